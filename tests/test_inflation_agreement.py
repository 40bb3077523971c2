"""The contract's JSON Schema is the truth; Pydantic inflation must agree with it.

For every task of the example service, through the models codegen generated and the
implementations bound to them (examples/shop):

- whatever the schema accepts, the models accept too, and dumping them gives back a
  document the schema accepts (so a task never refuses, or mangles, a valid call);
- whatever the schema refuses never reaches the function: the call fails with a
  `ContractViolation` listing exactly the schema's violations (in a worker the consumer
  refuses it even earlier, with the same error).
"""

from __future__ import annotations

import copy
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from taskschema import ContractViolation, TaskContract
from taskschema._contract import bundle
from taskschema.celery import ContractTask

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"
sys.path.insert(0, str(SHOP))

from shop import worker  # noqa: E402  (the example service lives outside the package)

TASKS = sorted(name for name in worker.app.tasks if not name.startswith("celery."))
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_LEAVES | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
# hypothesis-jsonschema draws date-time and email itself, but not uuid.
CUSTOM_FORMATS = {"uuid": st.uuids().map(str)}
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def valid(contract: TaskContract, part: str) -> st.SearchStrategy[Any]:
    """Documents valid under the contract's `params` or `returns`."""
    return from_schema(bundle(contract.to_dict(), part), custom_formats=CUSTOM_FORMATS)


def task_of(name: str) -> tuple[ContractTask, TaskContract]:
    task = worker.app.tasks[name]
    assert isinstance(task, ContractTask)
    contract = next(c for c in worker.CONTRACTS if c.task == name)
    return task, contract


@pytest.fixture(params=TASKS)
def task_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def test_models_accept_what_the_schema_accepts_and_round_trip(task_name: str) -> None:
    task, contract = task_of(task_name)

    @SETTINGS
    @given(valid(contract, "params"))
    def check(call: dict[str, Any]) -> None:
        params = contract.with_defaults(call)
        assert contract.params_violations(params) == []
        inflated = task.inflate(copy.deepcopy(params))  # raises if a model refuses
        again = to_jsonable_python(inflated)
        assert contract.params_violations(again) == [], (params, again)

    check()


def test_returns_models_accept_what_the_schema_accepts(task_name: str) -> None:
    task, contract = task_of(task_name)
    returns = TypeAdapter(typing.get_type_hints(task.run)["return"])

    @SETTINGS
    @given(valid(contract, "returns"))
    def check(value: Any) -> None:
        model = returns.validate_python(value)
        assert contract.returns_violations(task.dump_return(model)) == []

    check()


def mutations(contract: TaskContract) -> st.SearchStrategy[dict[str, Any]]:
    """Valid calls with one parameter replaced by an arbitrary JSON value, or dropped,
    or an unknown one added: mostly invalid, sometimes still valid."""
    names = st.sampled_from(contract.parameters)

    @st.composite
    def mutate(draw: st.DrawFn) -> dict[str, Any]:
        call: dict[str, Any] = dict(draw(valid(contract, "params")))
        kind = draw(st.sampled_from(["replace", "drop", "add"]))
        if kind == "replace":
            call[draw(names)] = draw(JSON_VALUES)
        elif kind == "drop":
            call.pop(draw(names), None)
        else:
            call[draw(st.text(min_size=1, max_size=6))] = draw(JSON_VALUES)
        return call

    return mutate()


def test_what_the_schema_refuses_never_reaches_the_function(task_name: str) -> None:
    """Refused with exactly the schema's violations: the example's functions always
    succeed, and a refusal of their models or return values would read differently."""
    task, contract = task_of(task_name)

    @SETTINGS
    @given(mutations(contract))
    def check(call: dict[str, Any]) -> None:
        expected = contract.params_violations(contract.with_defaults(call))
        if not expected:
            return  # still valid: the first test covers it
        result = task.apply(kwargs=copy.deepcopy(call))
        assert result.failed(), call
        error = result.result
        assert isinstance(error, ContractViolation), repr(error)
        assert error.violations == expected

    check()


@pytest.fixture(autouse=True, scope="module")
def _restore_path() -> Iterator[None]:
    yield
    sys.path.remove(str(SHOP))
