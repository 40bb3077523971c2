"""The producer side for Python: contract-checked sends whose results come back typed.

`TypedTask` sends any contracted task with untyped arguments. Generated code subclasses
`TaskStub` instead, with `delay`, `apply_async`, `s` and `delay_on_commit` spelled out
per task, so type checkers see each parameter; `implement` binds a worker function to
the stub and refuses one that does not match the contract, at import time.
"""

from __future__ import annotations

import copy
import enum
import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Generic, TypedDict, TypeVar, Union, get_args, get_origin

from celery import Celery, current_app
from celery.canvas import Signature
from celery.result import AsyncResult
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from ._contract import TaskContract
from ._exceptions import TaskSchemaError

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

# Contract options a producer puts on the message; the rest are the worker's to apply.
PRODUCER_OPTIONS: Final = (
    "queue", "routing_key", "priority", "soft_time_limit", "time_limit", "expires"
)  # fmt: skip


class NotGiven(enum.Enum):
    """The type of `NOT_GIVEN`, the default of a generated stub's optional parameters.

    An argument left at `NOT_GIVEN` is not sent at all: the worker fills the contract's
    default, so producers never bake in a default that a later contract version changes.
    """

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Final = NotGiven.NOT_GIVEN


class SendOptions(TypedDict, total=False):
    """Celery's `apply_async` options a typed stub accepts; each overrides the contract's."""

    countdown: float
    eta: datetime
    expires: float | datetime
    queue: str
    routing_key: str
    exchange: str
    priority: int
    task_id: str
    soft_time_limit: float
    time_limit: float
    headers: dict[str, Any]
    link: Signature[Any] | list[Signature[Any]]
    link_error: Signature[Any] | list[Signature[Any]]
    retry: bool
    retry_policy: dict[str, Any]
    ignore_result: bool
    shadow: str


class ImplementationMismatchError(TaskSchemaError, TypeError):
    """A worker function that does not fit the contract its stub was generated from."""

    def __init__(self, message: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(message + "".join(f"\n  - {problem}" for problem in self.problems))
        self.message = message


class TypedResult(Generic[R]):
    """An `AsyncResult` whose `get()` returns the task's declared return type."""

    def __init__(self, result: AsyncResult[Any], adapter: TypeAdapter[R]) -> None:
        self.async_result = result
        self._adapter = adapter

    @property
    def id(self) -> str:
        return str(self.async_result.id)

    @property
    def state(self) -> str:
        return str(self.async_result.state)

    def ready(self) -> bool:
        return bool(self.async_result.ready())

    def get(self, timeout: float | None = None, **options: Any) -> R:
        """Wait for the value and validate it into the return type.

        A refused call raises `ContractViolation` listing every violation.
        """
        return self._adapter.validate_python(self.async_result.get(timeout=timeout, **options))


class TaskStub(Generic[R]):
    """What generated stubs are made of: one contracted task, sent through a Celery app.

    The app is the one given, else Celery's current app at send time (as with
    `shared_task`); `using(app)` returns a copy bound to another app. Every call is
    dumped to plain JSON and checked against the contract before it is published.
    """

    def __init__(
        self,
        contract: TaskContract,
        returns: Any = Any,
        *,
        app: Celery | None = None,
        version: int | None = None,
        schema_id: int | None = None,
    ) -> None:
        self.contract = contract
        self.returns: Any = returns
        self.version = version
        self.schema_id = schema_id
        self._app = app
        self._adapter: TypeAdapter[R] = TypeAdapter(returns)
        options = contract.options.model_dump(exclude_none=True)
        self.options: dict[str, Any] = {
            key: value for key, value in options.items() if key in PRODUCER_OPTIONS
        }

    @property
    def name(self) -> str:
        return self.contract.task

    @property
    def app(self) -> Celery:
        return self._app if self._app is not None else current_app

    def using(self, app: Celery) -> typing.Self:
        """A copy of this stub that sends through `app`."""
        bound = copy.copy(self)
        bound._app = app
        return bound

    def __repr__(self) -> str:
        version = "local" if self.version is None else f"v{self.version}"
        return f"<{type(self).__name__} {self.name} {version} {self.contract.fingerprint[:12]}>"

    # -- sending ---------------------------------------------------------------------------

    def bind(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The call as one validated, plain-JSON params object (models dumped, dates as ISO
        strings). Raises `CallValidationError` naming every problem."""
        params = self.contract.bind(
            to_jsonable_python(list(args)), to_jsonable_python(dict(kwargs or {}))
        )
        self.contract.validate_params(params)
        return params

    def _given(self, call: Mapping[str, object]) -> dict[str, Any]:
        """`call` without the arguments left at NOT_GIVEN, validated."""
        return self.bind((), {key: value for key, value in call.items() if value is not NOT_GIVEN})

    def _send(
        self, call: Mapping[str, object], options: Mapping[str, Any] | None = None
    ) -> TypedResult[R]:
        """Publish `call` (keyword arguments) with the contract's options, then `options`."""
        result = self.app.send_task(
            self.name, kwargs=self._given(call), **{**self.options, **(options or {})}
        )
        return TypedResult(result, self._adapter)

    def _signature(self, call: Mapping[str, object]) -> Signature[Any]:
        """A signature for canvas use, with the call already validated."""
        return self.app.signature(self.name, kwargs=self._given(call), options=dict(self.options))

    def _send_on_commit(self, call: Mapping[str, object]) -> None:
        """Publish `call` once the current Django transaction commits."""
        self._on_commit(self._given(call))

    def _on_commit(self, params: dict[str, Any]) -> None:
        """Publish checked `params` once the current Django transaction commits (never if
        it rolls back), as `celery.contrib.django.task.DjangoTask.delay_on_commit` does;
        outside a transaction Django publishes at once."""
        try:
            transaction: Any = importlib.import_module("django.db.transaction")
        except ImportError as exc:
            raise RuntimeError(
                f"{self.name}: delay_on_commit() publishes through Django's "
                f"transaction.on_commit, and Django is not importable ({exc}); "
                "use delay() instead"
            ) from exc
        transaction.on_commit(
            functools.partial(self.app.send_task, self.name, kwargs=params, **self.options)
        )

    # -- the worker side -------------------------------------------------------------------

    def implement(self, app: Celery, **options: Any) -> Callable[[F], Any]:
        """Register the decorated function as this task in `app`'s workers.

        The function must take the contract's parameters, in order, optional exactly
        where the contract's are, annotated with the stub's types, and return the
        contract's type; otherwise `ImplementationMismatchError` is raised here, at
        import time, listing every difference. The task is registered under the
        contract's name with `taskschema.celery.ContractTask` as its base and the
        contract's worker options (which win over `options`). Its contract is pinned
        in the app's validating consumer (call `taskschema.celery.install(app)` first).
        """
        from .celery import WORKER_OPTIONS, ContractTask, gate_for

        def decorate(function: F) -> Any:
            problems = self.mismatches(function, bound=bool(options.get("bind")))
            if problems:
                where = f"{function.__module__}.{function.__qualname__}"
                raise ImplementationMismatchError(
                    f"{where} does not match the contract of {self.name} ({self._identity()})",
                    problems,
                )
            gate = gate_for(app)
            if gate is None:
                raise RuntimeError(
                    f"{self.name}.implement({app.main or app!r}): call "
                    "taskschema.celery.install(app) before implementing tasks, so their "
                    "messages are checked and their parameters arrive as models"
                )
            _pin(gate, self.contract)
            contract_options = {
                key: value
                for key, value in self.contract.options.model_dump(exclude_none=True).items()
                if key in WORKER_OPTIONS
            }
            register: Callable[[F], Any] = app.task(
                **{**options, **contract_options}, name=self.name, base=ContractTask
            )
            return register(function)

        return decorate

    def _identity(self) -> str:
        version = "local contract" if self.version is None else f"v{self.version}"
        return f"{version}, fingerprint {self.contract.fingerprint[:12]}"

    def expected_types(self) -> tuple[dict[str, Any], Any]:
        """The parameter types (in contract order) and return type a worker function must
        declare: those of the generated `delay`, without `NotGiven`."""
        delay = getattr(type(self), "delay", None)
        hints: dict[str, Any] = typing.get_type_hints(delay) if delay else {}
        params = {
            name: _without_not_given(hints[name]) if name in hints else Any
            for name in self.contract.parameters
        }
        return params, self.returns

    def mismatches(self, function: Callable[..., Any], *, bound: bool = False) -> list[str]:
        """Every way `function` differs from the contract; empty when it fits."""
        problems: list[str] = []
        signature = inspect.signature(function)
        parameters = list(signature.parameters.values())
        if bound and parameters:
            parameters = parameters[1:]  # `self`, the task, with bind=True
        expected, returns = self.expected_types()
        names = list(expected)
        for parameter in parameters:
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                problems.append(f"takes *{parameter.name}; the contract's parameters are named")
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                problems.append(f"takes **{parameter.name}; the contract's parameters are named")
        named = [
            p
            for p in parameters
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        given = [p.name for p in named]
        missing = [name for name in names if name not in given]
        extra = [name for name in given if name not in names]
        problems.extend(f"parameter {name!r} of the contract is missing" for name in missing)
        problems.extend(f"parameter {name!r} is not in the contract" for name in extra)
        common = [name for name in given if name in names]
        if common != [name for name in names if name in given]:
            problems.append(
                f"parameters are in the order ({', '.join(common)}); the contract's order is "
                f"({', '.join(names)}), which positional calls bind by"
            )
        try:
            hints = typing.get_type_hints(function)
        except Exception as exc:  # unresolvable forward references and the like
            return [*problems, f"its annotations cannot be resolved: {exc}"]
        defaults = self.contract.params["properties"]
        for parameter in named:
            name = parameter.name
            if name not in expected:
                continue
            required = name in self.contract.required
            has_default = parameter.default is not inspect.Parameter.empty
            if required and has_default:
                problems.append(f"parameter {name!r} has a default but the contract requires it")
            elif not required and not has_default:
                default = (
                    defaults[name].get("default") if isinstance(defaults[name], dict) else None
                )
                detail = f" (contract default {default!r})" if default is not None else ""
                problems.append(
                    f"parameter {name!r} is optional in the contract{detail} but has no default"
                )
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                problems.append(f"parameter {name!r} is positional-only; calls pass it by name")
            if name not in hints:
                problems.append(
                    f"parameter {name!r} has no annotation; the contract's type is "
                    f"{type_name(expected[name])}"
                )
            elif not same_type(hints[name], expected[name]):
                problems.append(
                    f"parameter {name!r} is annotated {type_name(hints[name])}; the contract's "
                    f"type is {type_name(expected[name])}"
                )
        if "return" not in hints:
            problems.append(
                f"it has no return annotation; the contract returns {type_name(returns)}"
            )
        elif not same_type(hints["return"], returns):
            problems.append(
                f"it returns {type_name(hints['return'])}; the contract returns "
                f"{type_name(returns)}"
            )
        return problems


def _pin(gate: Any, contract: TaskContract) -> None:
    """Put `contract` first among the gate's sources: generated code pins the contract
    its implementation was written for."""
    from ._sources import ChainedSources

    decoder = gate.decoder
    sources = decoder.contracts
    head = sources.sources[0] if isinstance(sources, ChainedSources) and sources.sources else None
    if isinstance(head, _Pinned):
        head.pin(contract)
        return
    pinned = _Pinned([contract])
    decoder.contracts = ChainedSources(pinned, sources)


class _Pinned:
    """Contracts pinned by `implement`, by task name (a growing `StaticContracts`)."""

    def __init__(self, contracts: Sequence[TaskContract]) -> None:
        self._contracts = {contract.task: contract for contract in contracts}

    @property
    def tasks(self) -> frozenset[str]:
        return frozenset(self._contracts)

    def pin(self, contract: TaskContract) -> None:
        self._contracts[contract.task] = contract

    def contract_for(self, task: str) -> TaskContract | None:
        return self._contracts.get(task)


def _without_not_given(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        kept = [arg for arg in get_args(hint) if arg is not NotGiven]
        return functools.reduce(lambda left, right: left | right, kept)
    return hint


def _normal(hint: Any) -> Any:
    """A comparable form of a type: `Annotated` dropped, unions as sets, `List` = `list`."""
    origin = get_origin(hint)
    if origin is typing.Annotated:
        return _normal(get_args(hint)[0])
    if origin in (Union, types.UnionType):
        return ("union", frozenset(_normal(arg) for arg in get_args(hint)))
    if hint is None:
        return type(None)
    if origin is None:
        return hint
    if origin is typing.Literal:
        return ("literal", frozenset(get_args(hint)))
    return (origin, tuple(_normal(arg) for arg in get_args(hint)))


def same_type(left: Any, right: Any) -> bool:
    """Whether two annotations mean the same type (up to `Annotated` and spelling)."""
    return bool(_normal(left) == _normal(right))


def type_name(hint: Any) -> str:
    """A type as written in code: `Order`, `list[Order]`, `int | None`."""
    if hint is None or hint is type(None):
        return "None"
    if isinstance(hint, type) and not get_args(hint):
        return hint.__qualname__
    if get_origin(hint) in (Union, types.UnionType):
        return " | ".join(type_name(arg) for arg in get_args(hint))
    return repr(hint).replace("typing.", "")


class TypedTask(TaskStub[R]):
    """Sends one contracted task with untyped arguments: they are dumped to plain JSON and
    checked against the contract before publishing, and the contract's options are applied.
    """

    def __init__(self, app: Celery | None, contract: TaskContract, returns: Any = Any) -> None:
        super().__init__(contract, returns, app=app)

    def delay(self, *args: Any, **kwargs: Any) -> TypedResult[R]:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TypedResult[R]:
        """Publish after validating; `options` override the contract's."""
        result = self.app.send_task(
            self.name, kwargs=self.bind(args, kwargs), **{**self.options, **options}
        )
        return TypedResult(result, self._adapter)

    def s(self, *args: Any, **kwargs: Any) -> Signature[Any]:
        """A signature for canvas use, with the call already validated."""
        return self.app.signature(
            self.name, kwargs=self.bind(args, kwargs), options=dict(self.options)
        )

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """`delay` once the current Django transaction commits; the call is checked now."""
        self._on_commit(self.bind(args, kwargs))
