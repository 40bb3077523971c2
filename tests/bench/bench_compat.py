"""Compatibility checker cost on wide contracts, against loading the same contracts.

Two shapes of 200 properties per contract: mixed scalars, arrays and `$ref`s, and
two-variant tagged (discriminated) `oneOf`s, where every property is a union whose
branches must be matched and proved disjoint. Run with `make bench`. Times are medians
of repeated runs in one process; the ratio to the baseline (parsing and
meta-schema-validating the two contracts, which every check needs anyway) is what to
compare across machines.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from taskschema import CompatibilityMode, TaskContract, check_compatibility

WIDTH = 200
TARGET_MS = 50.0


def wide_contract(width: int, *, changed: bool) -> dict[str, Any]:
    kinds: list[dict[str, Any]] = [
        {"type": "integer", "minimum": 0, "maximum": 1000},
        {"type": "string", "maxLength": 64, "format": "email"},
        {"type": ["number", "null"]},
        {"enum": ["a", "b", "c"]},
        {"type": "array", "items": {"$ref": "#/$defs/Item"}, "maxItems": 50},
        {"$ref": "#/$defs/Item"},
    ]
    properties = {f"p{index:03d}": dict(kinds[index % len(kinds)]) for index in range(width)}
    if changed:  # compatible widenings everywhere, so the checker walks every property
        for schema in properties.values():
            if "maximum" in schema:
                schema["maximum"] = 2000
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], "d"]
    item = {
        "type": "object",
        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
        "required": ["sku", "qty"],
        "additionalProperties": False,
    }
    return {**contract_of("bench.wide", properties), "$defs": {"Item": item}}


def contract_of(task: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A contract whose params (the first half required) and return value both hold
    `properties`, closed, so both sides are compared."""
    closed = {"type": "object", "properties": properties, "additionalProperties": False}
    return {
        "task": task,
        "params": {**closed, "required": list(properties)[: len(properties) // 2]},
        "returns": {**closed, "properties": dict(properties)},
    }


def variant(tag: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"kind": {"const": tag}, **properties},
        "required": ["kind"],
        "additionalProperties": False,
    }


def tagged_contract(width: int, *, changed: bool) -> dict[str, Any]:
    """Every parameter (and returned field) a `oneOf` of two variants told apart by
    `kind`, each with its own limits (no two alike, as in a real contract); the change
    raises a limit inside one variant (BACKWARD-safe only)."""
    raised = 1000 if changed else 0
    properties = {
        f"p{index:03d}": {
            "oneOf": [
                variant("a", v={"type": "integer", "maximum": 10 + index + raised}),
                variant("b", s={"type": "string", "maxLength": 64 + index}),
            ]
        }
        for index in range(width)
    }
    return contract_of("bench.tagged", properties)


def median_ms(function: Callable[[], object], repeat: int = 30) -> float:
    function()  # warm caches the way a long-running registry has them
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def run(label: str, shape: Callable[..., dict[str, Any]]) -> None:
    old_doc, new_doc = shape(WIDTH, changed=False), shape(WIDTH, changed=True)
    old, new = TaskContract(old_doc), TaskContract(new_doc)
    report = check_compatibility(new, [(1, old)], CompatibilityMode.FULL)
    assert not report.compatible  # widenings break FORWARD: the checker must have looked
    backward = median_ms(lambda: check_compatibility(new, [(1, old)], CompatibilityMode.BACKWARD))
    full = median_ms(lambda: check_compatibility(new, [(1, old)], CompatibilityMode.FULL))
    baseline = median_ms(lambda: (TaskContract(old_doc), TaskContract(new_doc)))
    print(f"compatibility check, {WIDTH} {label} per contract (median of 30)")
    print(f"  baseline: load both contracts  {baseline:8.2f} ms")
    for name, value in (("BACKWARD check", backward), ("FULL check", full)):
        print(f"  {name:<29}  {value:8.2f} ms  x{value / baseline:.2f} of baseline")
    print(f"  target: under {TARGET_MS:.0f} ms -> {'met' if full < TARGET_MS else 'MISSED'}")


def main() -> None:
    run("mixed properties", wide_contract)
    run("tagged-oneOf properties", tagged_contract)


if __name__ == "__main__":
    main()
