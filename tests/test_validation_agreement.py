"""The hot-path validator never accepts what the reference validator refuses.

jsonschema-rs answers "valid?" on the hot path and python-jsonschema (the reference) has
the last word, so the fast answer may never accept a document the reference refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskschema import TaskContract
from taskschema._contract import bundle
from taskschema._validation import CompiledSchema

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = sorted((ROOT / "schemas" / "shop").rglob("*.json")) + sorted(
    (ROOT / "tests" / "contracts").glob("*.json")
)


def compiled(path: Path, part: str) -> CompiledSchema:
    contract = TaskContract.from_json(path.read_bytes())
    return CompiledSchema(bundle(contract.to_dict(), part))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["a@b.c", "2024-01-01T00:00:00Z", "x@", "GB", "EUR"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: p.stem)
def test_the_fast_validator_never_accepts_what_the_reference_refuses(path: Path) -> None:
    validator = compiled(path, "params")

    @settings(max_examples=150, deadline=None)
    @given(json_values)
    def check(document: Any) -> None:
        problems = validator.violations(document)
        assert (problems == []) == validator.reference.is_valid(document)

    check()
