"""The compatibility checker, rule by rule (shared/compatibility-rules.md, rules 1-13).

Each table case is one change of a schema fragment, old → new, with what holds between
the two sets of documents: `backward` is OK when old ⊆ new, else the rule id expected;
`forward` is OK when new ⊆ old, else the rule id. Every case runs four ways: the
fragment as a parameter's schema (BACKWARD checks old ⊆ new, FORWARD new ⊆ old) and as
the `returns` schema, where the roles flip (BACKWARD checks new ⊆ old: upgraded workers
write, old readers read). A `root` case changes the whole `params` schema instead, where
the decoder fills in defaults: it runs as params only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonpointer
import pytest

from taskschema import (
    CompatibilityMode,
    ContractError,
    Direction,
    Incompatibility,
    TaskContract,
)
from taskschema._compat import check_compatibility, compare, consequence

from helpers import make_contract

OK: Literal[True] = True
# The new contract is refused on load (ContractError at its `$ref`): never "compatible".
UNRESOLVABLE = "unresolvable-ref"
Verdict = Literal[True] | str
Side = Literal["params", "returns"]
TASK = "demo.task"


@dataclass(frozen=True)
class Case:
    """old → new; `backward`/`forward`: OK, or the rule id refusing that inclusion."""

    id: str
    old: Any
    new: Any
    backward: Verdict  # old ⊆ new
    forward: Verdict  # new ⊆ old
    old_defs: dict[str, Any] = field(default_factory=dict)
    new_defs: dict[str, Any] | None = None  # None: the same as old_defs
    sides: tuple[Side, ...] = ("params", "returns")
    root: bool = False  # old and new are whole `params` schemas


def root_case(id: str, old: Any, new: Any, backward: Verdict, forward: Verdict) -> Case:
    """A change of the whole `params` schema (where defaults are filled in)."""
    return Case(id, old, new, backward, forward, sides=("params",), root=True)


def obj(properties: dict[str, Any], *required: str, **more: Any) -> dict[str, Any]:
    """An object schema; `required` names listed after the properties."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, **more}
    if required:
        schema["required"] = list(required)
    return schema


def closed(properties: dict[str, Any], *required: str, **more: Any) -> dict[str, Any]:
    return obj(properties, *required, additionalProperties=False, **more)


INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}
NULL = {"type": "null"}
ZERO = {"type": "integer", "default": 0}  # a parameter the decoder fills in when omitted
ONE = {"type": "integer", "default": 1}


def tagged(tag: str, **properties: Any) -> dict[str, Any]:
    """An object variant told apart by a required `kind` const."""
    return closed({"kind": {"const": tag}, **properties}, "kind")


TREE_OLD = {
    "Tree": closed(
        {
            "value": INT,
            "label": STR,
            "children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}},
        },
        "value",
    )
}
TREE_NUMBER = copy.deepcopy(TREE_OLD)
TREE_NUMBER["Tree"]["properties"]["value"] = NUM
TREE_LABEL_REQUIRED = copy.deepcopy(TREE_OLD)
TREE_LABEL_REQUIRED["Tree"]["required"] = ["value", "label"]

MUTUAL_OLD = {
    "A": obj({"b": {"$ref": "#/$defs/B"}, "name": STR}),
    "B": obj({"a": {"$ref": "#/$defs/A"}, "n": INT}),
}
MUTUAL_NUMBER = copy.deepcopy(MUTUAL_OLD)
MUTUAL_NUMBER["B"]["properties"]["n"] = NUM
MUTUAL_REQUIRED = copy.deepcopy(MUTUAL_OLD)
MUTUAL_REQUIRED["B"]["required"] = ["n"]

# Two object types whose only documents would be infinitely deep: comparing them for
# overlap recursed forever before.
ENDLESS = {
    "P": closed({"n": {"$ref": "#/$defs/P"}}, "n"),
    "Q": closed({"n": {"$ref": "#/$defs/Q"}, "m": INT}, "n"),
}

CASES: list[Case] = [
    # -- 1. types ------------------------------------------------------------------
    Case("1-integer-to-number", INT, NUM, OK, "type-widened"),
    Case("1-number-to-integer", NUM, INT, "type-narrowed", OK),
    Case("1-T-to-T-or-null", STR, {"type": ["string", "null"]}, OK, "type-widened"),
    Case("1-T-or-null-to-T", {"type": ["string", "null"]}, STR, "type-narrowed", OK),
    Case(
        "1-T-to-anyOf-T-or-null",
        INT,
        {"anyOf": [INT, NULL]},
        OK,
        "type-changed",  # the null branch is not an integer
    ),
    Case(
        "1-anyOf-branch-added",
        {"anyOf": [STR, INT]},
        {"anyOf": [STR, INT, NULL]},
        OK,
        "union-branch-added",
    ),
    Case(
        "1-anyOf-branch-removed",
        {"anyOf": [STR, INT, NULL]},
        {"anyOf": [STR, INT]},
        "union-branch-missing",
        OK,
    ),
    Case("1-unrelated-string-to-number", STR, NUM, "type-changed", "type-changed"),
    Case("1-unrelated-object-to-array", obj({}), {"type": "array"}, "type-changed", "type-changed"),
    Case("1-boolean-to-null", {"type": "boolean"}, NULL, "type-changed", "type-changed"),
    Case("1-any-to-integer", {}, INT, "type-narrowed", OK),
    # -- 2. oneOf --------------------------------------------------------------------
    Case(
        "2-oneOf-disjoint-branch-added",
        {"oneOf": [STR, INT]},
        {"oneOf": [STR, INT, NULL]},
        OK,
        "union-branch-added",
    ),
    Case(
        "2-oneOf-overlapping-branch-added",
        {"oneOf": [STR, INT]},
        {"oneOf": [STR, INT, {"type": "string", "maxLength": 3}]},
        "one-of-branch-overlaps",
        OK,  # short strings match two branches, so the new schema refuses them
    ),
    Case(
        "2-oneOf-number-branch-overlaps-integer",
        {"oneOf": [INT, STR]},
        {"oneOf": [INT, STR, NUM]},
        "one-of-branch-overlaps",
        "union-branch-added",  # 1.5 matches only the new branch
    ),
    Case(
        "2-oneOf-tagged-variant-added",
        {"oneOf": [tagged("a", x=INT), tagged("b", y=STR)]},
        {"oneOf": [tagged("a", x=INT), tagged("b", y=STR), tagged("c", z=NUM)]},
        OK,
        "union-branch-added",
    ),
    Case(
        "2-oneOf-untyped-tagged-branches-overlap-on-non-objects",
        {"oneOf": [{"properties": {"k": {"const": 1}}, "required": ["k"]}]},
        {
            "oneOf": [
                {"properties": {"k": {"const": 1}}, "required": ["k"]},
                {"properties": {"k": {"const": 2}}, "required": ["k"]},
            ]
        },
        "one-of-branch-overlaps",  # "x" is not an object: it matches both branches
        "union-branch-added",
    ),
    Case(
        "2-oneOf-branch-removed",
        {"oneOf": [STR, INT, NULL]},
        {"oneOf": [STR, INT]},
        "union-branch-missing",
        OK,
    ),
    Case(
        "2-oneOf-overlap-with-recursive-branches-terminates",
        {"oneOf": [{"$ref": "#/$defs/P"}, STR]},
        {"oneOf": [{"$ref": "#/$defs/P"}, STR, {"$ref": "#/$defs/Q"}]},
        "one-of-branch-overlaps",  # not provably disjoint: refused, and it terminates
        "union-widened",
        old_defs=ENDLESS,
    ),
    # -- 3. enum and const -----------------------------------------------------------
    Case("3-enum-value-added", {"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}, OK, "enum-widened"),
    Case(
        "3-enum-value-removed", {"enum": ["a", "b", "c"]}, {"enum": ["a", "b"]}, "enum-narrowed", OK
    ),
    Case("3-enum-added", STR, {"type": "string", "enum": ["a"]}, "enum-added", OK),
    Case("3-enum-removed", {"type": "string", "enum": ["a"]}, STR, OK, "enum-removed"),
    Case("3-const-changed", {"const": "a"}, {"const": "b"}, "const-changed", "const-changed"),
    Case("3-const-added", STR, {"type": "string", "const": "a"}, "const-added", OK),
    Case("3-const-to-enum-with-it", {"const": "a"}, {"enum": ["a", "b"]}, OK, "const-removed"),
    Case("3-true-is-not-1", {"enum": [1, 2]}, {"enum": [True, 2]}, "enum-narrowed", "enum-widened"),
    Case("3-1-is-1.0", {"enum": [1, 2]}, {"enum": [1.0, 2]}, OK, OK),
    Case("3-boolean-to-const-true", {"type": "boolean"}, {"const": True}, "const-added", OK),
    Case(
        "3-boolean-to-enum",
        {"type": "boolean"},
        {"enum": [False, None]},
        "enum-added",
        "type-widened",
    ),
    # -- 4. limits, multipleOf, pattern, uniqueItems -----------------------------------
    Case(
        "4-maximum-raised",
        {"type": "integer", "maximum": 10},
        {"type": "integer", "maximum": 20},
        OK,
        "limit-loosened",
    ),
    Case(
        "4-maximum-lowered",
        {"type": "integer", "maximum": 20},
        {"type": "integer", "maximum": 10},
        "limit-tightened",
        OK,
    ),
    Case(
        "4-minimum-lowered",
        {"type": "number", "minimum": 5},
        {"type": "number", "minimum": 0},
        OK,
        "limit-loosened",
    ),
    Case("4-maximum-added", INT, {"type": "integer", "maximum": 10}, "limit-added", OK),
    Case("4-limit-removed", {"type": "string", "maxLength": 5}, STR, OK, "limit-removed"),
    Case(
        "4-maximum-made-exclusive",
        {"type": "number", "maximum": 10},
        {"type": "number", "exclusiveMaximum": 10},
        "limit-tightened",
        OK,
    ),
    Case(
        "4-minLength-raised",
        {"type": "string", "minLength": 1},
        {"type": "string", "minLength": 2},
        "limit-tightened",
        OK,
    ),
    Case(
        "4-maxItems-raised",
        {"type": "array", "maxItems": 3},
        {"type": "array", "maxItems": 5},
        OK,
        "limit-loosened",
    ),
    Case(
        "4-minItems-added", {"type": "array"}, {"type": "array", "minItems": 1}, "limit-added", OK
    ),
    Case("4-maxProperties-added", obj({}), obj({}, maxProperties=2), "limit-added", OK),
    Case(
        "4-multipleOf-to-divisor",
        {"type": "integer", "multipleOf": 4},
        {"type": "integer", "multipleOf": 2},
        OK,
        "multiple-of-changed",
    ),
    Case("4-multipleOf-added", INT, {"type": "integer", "multipleOf": 5}, "multiple-of-added", OK),
    Case("4-multipleOf-1-on-integers", INT, {"type": "integer", "multipleOf": 1}, OK, OK),
    Case(
        # 0.3 is a multiple of 0.3, but the validator's float arithmetic says it is not
        # one of 0.1 (0.3 / 0.1 = 2.9999999999999996): fractional steps prove nothing.
        "4-fractional-multipleOf-not-proved",
        {"type": "number", "multipleOf": 0.3},
        {"type": "number", "multipleOf": 0.1},
        "multiple-of-changed",
        "multiple-of-changed",
    ),
    Case(
        "4-pattern-changed",
        {"type": "string", "pattern": "^a"},
        {"type": "string", "pattern": "^b"},
        "pattern-changed",
        "pattern-changed",
    ),
    Case("4-pattern-added", STR, {"type": "string", "pattern": "^a"}, "pattern-added", OK),
    Case(
        "4-pattern-identical",
        {"type": "string", "pattern": "^a", "title": "x"},
        {"type": "string", "pattern": "^a"},
        OK,
        OK,
    ),
    Case(
        "4-uniqueItems-added",
        {"type": "array"},
        {"type": "array", "uniqueItems": True},
        "unique-items-added",
        OK,
    ),
    # -- 5. format -------------------------------------------------------------------
    Case("5-format-added", STR, {"type": "string", "format": "date-time"}, "format-added", OK),
    Case("5-format-removed", {"type": "string", "format": "email"}, STR, OK, "format-removed"),
    Case(
        "5-format-changed",
        {"type": "string", "format": "email"},
        {"type": "string", "format": "uuid"},
        "format-changed",
        "format-changed",
    ),
    # -- 6. required -----------------------------------------------------------------
    Case(
        "6-made-required", closed({"a": INT}), closed({"a": INT}, "a"), "property-made-required", OK
    ),
    Case(
        "6-made-required-nested-default-not-filled",
        closed({"a": {"type": "integer", "default": 0}}),
        closed({"a": {"type": "integer", "default": 0}}, "a"),
        "property-made-required",  # only top-level parameters get defaults filled in
        OK,
    ),
    Case(
        "6-dropped-from-required",
        closed({"a": INT}, "a"),
        closed({"a": INT}),
        OK,
        "property-made-optional",
    ),
    # At the params root the decoder fills in defaults, in both directions.
    root_case(
        "6-made-required-with-a-default",
        closed({"x": INT, "y": ZERO}, "x"),
        closed({"x": INT, "y": ZERO}, "x", "y"),
        OK,
        OK,  # both decoders fill `y` in
    ),
    root_case(
        "6-new-required-parameter-with-a-default",
        closed({"x": INT}, "x"),
        closed({"x": INT, "y": ZERO}, "x", "y"),
        OK,
        "property-added-to-closed-object",  # new producers may pass `y`
    ),
    root_case(
        "6-default-removed-from-a-required-parameter",
        closed({"x": INT, "y": ZERO}, "x", "y"),
        closed({"x": INT, "y": INT}, "x", "y"),
        "property-made-required",  # old producers may omit `y`
        OK,
    ),
    root_case(
        "6-default-added-to-a-required-parameter",
        closed({"x": INT, "y": INT}, "x", "y"),
        closed({"x": INT, "y": ZERO}, "x", "y"),
        OK,
        "property-made-optional",  # new producers may omit `y`
    ),
    root_case(
        "6-dropped-from-required-with-a-default",
        closed({"x": INT, "y": ZERO}, "x", "y"),
        closed({"x": INT, "y": ZERO}, "x"),
        OK,
        OK,
    ),
    # The params root lists the calls allowed: a filled-in default changes the call.
    root_case(
        "6-listed-calls-new-defaulted-parameter",
        closed({"x": INT}, "x", enum=[{"x": 1}]),
        closed({"x": INT, "y": ZERO}, "x", enum=[{"x": 1}]),
        "default-refused",  # {"x": 1} becomes {"x": 1, "y": 0}, which is not listed
        "parameter-position-changed",
    ),
    root_case(
        "6-listed-call-new-defaulted-parameter",
        closed({"x": INT}, "x", const={"x": 1}),
        closed({"x": INT, "y": ZERO}, "x", const={"x": 1}),
        "default-refused",
        "parameter-position-changed",
    ),
    root_case(
        "6-listed-calls-default-removed",
        closed({"x": INT, "y": ZERO}, "x", enum=[{"x": 1, "y": 0}]),
        closed({"x": INT, "y": INT}, "x", enum=[{"x": 1, "y": 0}]),
        "default-removed",  # old producers send {"x": 1}; the new decoder leaves it so
        OK,
    ),
    root_case(
        "6-listed-calls-default-changed",
        closed({"x": INT, "y": ZERO}, "x", enum=[{"x": 1, "y": 0}]),
        closed({"x": INT, "y": ONE}, "x", enum=[{"x": 1, "y": 0}]),
        "default-refused",  # {"x": 1} becomes {"x": 1, "y": 1}
        OK,  # new producers sending {"x": 1} get it refused by their own decoder
    ),
    root_case(
        "6-calls-listed-beside-a-defaulted-parameter",
        closed({"x": INT, "y": ZERO}, "x"),
        closed({"x": INT, "y": ZERO}, "x", enum=[{"x": 1, "y": 0}]),
        "default-fill-conflict",  # also enum-added: {"x": 2} is refused
        OK,  # {"x": 1} and {"x": 1, "y": 0}: both decoders make the listed call of them
    ),
    root_case(
        "6-listed-calls-defaults-filled-alike",
        closed({"x": INT, "y": ZERO}, "x", enum=[{"x": 1, "y": 0}]),
        closed({"x": NUM, "y": ZERO}, "x", enum=[{"x": 1, "y": 0}]),
        OK,
        OK,
    ),
    # -- 7. optional property added ------------------------------------------------------
    Case(
        "7-added-to-closed",
        closed({"a": INT}),
        closed({"a": INT, "b": STR}),
        OK,
        "property-added-to-closed-object",
    ),
    Case(
        "7-added-to-open",
        obj({"a": INT}),
        obj({"a": INT, "b": STR}),
        "property-added-to-open-object",
        OK,
    ),
    Case("7-added-to-open-as-true", obj({"a": INT}), obj({"a": INT, "b": {}}), OK, OK),
    Case(
        "7-partially-open-additional-covering",
        obj({"a": INT}, additionalProperties=STR),
        obj({"a": INT, "b": STR}, additionalProperties=STR),
        OK,
        OK,
    ),
    Case(
        "7-partially-open-additional-narrower",
        obj({"a": INT}, additionalProperties=STR),
        obj({"a": INT, "b": {"type": "string", "maxLength": 2}}, additionalProperties=STR),
        "property-added-to-open-object",
        OK,
    ),
    Case(
        "7-partially-open-pattern-covering",
        closed({}, patternProperties={"^x_": INT}),
        closed({"x_a": INT}, patternProperties={"^x_": INT}),
        OK,
        OK,
    ),
    Case(
        "7-partially-open-pattern-narrower",
        closed({}, patternProperties={"^x_": INT}),
        closed({"x_a": {"type": "integer", "minimum": 0}}, patternProperties={"^x_": INT}),
        "property-added-to-open-object",
        OK,
    ),
    Case(
        "7-pattern-added-to-closed",
        closed({"a": INT}),
        closed({"a": INT}, patternProperties={"^x_": INT}),
        OK,
        "pattern-properties-changed",
    ),
    Case(
        "7-pattern-added-to-open",
        obj({"a": INT}),
        obj({"a": INT}, patternProperties={"^x_": INT}),
        "pattern-properties-changed",
        OK,
    ),
    # -- 8. property removed -----------------------------------------------------------
    Case(
        "8-removed-optional-new-open",
        obj({"a": INT, "b": STR}, "a"),
        obj({"a": INT}, "a"),
        OK,
        "property-removed-from-open-object",
    ),
    Case(
        "8-removed-required-new-open",
        obj({"a": INT, "b": STR}, "a", "b"),
        obj({"a": INT}, "a"),
        OK,
        "property-made-optional",
    ),
    Case(
        "8-removed-new-closed",
        closed({"a": INT, "b": STR}, "a"),
        closed({"a": INT}, "a"),
        "property-removed-from-closed-object",
        OK,
    ),
    Case("8-removed-true-new-open", obj({"a": INT, "b": {}}), obj({"a": INT}), OK, OK),
    # -- 9. opening and closing ----------------------------------------------------------
    Case(
        "9-opened",
        closed({"a": INT}),
        obj({"a": INT}, additionalProperties=True),
        OK,
        "object-opened",
    ),
    Case(
        "9-opened-to-schema",
        closed({"a": INT}),
        obj({"a": INT}, additionalProperties=STR),
        OK,
        "object-opened",
    ),
    Case(
        "9-additional-schema-widened",
        obj({"a": INT}, additionalProperties=STR),
        obj({"a": INT}, additionalProperties={"type": ["string", "null"]}),
        OK,
        "type-widened",
    ),
    Case("9-closed", obj({"a": INT}), closed({"a": INT}), "object-closed", OK),
    Case(
        "9-unevaluated-opened",
        obj({"a": INT}, unevaluatedProperties=False),
        obj({"a": INT}),
        OK,
        "object-opened",
    ),
    Case(
        "9-unevaluated-closed-beside-an-applicator",
        obj({"a": {}}, dependentSchemas={"a": obj({"b": {}})}),
        obj({"a": {}}, dependentSchemas={"a": obj({"b": {}})}, unevaluatedProperties=False),
        "object-closed",
        OK,
    ),
    # -- 10. arrays and tuples -------------------------------------------------------------
    Case(
        "10-items-widened",
        {"type": "array", "items": INT},
        {"type": "array", "items": NUM},
        OK,
        "type-widened",
    ),
    Case(
        "10-items-narrowed",
        {"type": "array", "items": NUM},
        {"type": "array", "items": INT},
        "type-narrowed",
        OK,
    ),
    Case(
        "10-prefix-item-widened",
        {"type": "array", "prefixItems": [STR, INT], "items": False},
        {"type": "array", "prefixItems": [STR, NUM], "items": False},
        OK,
        "type-widened",
    ),
    Case(
        "10-item-appended-to-closed-tuple",
        {"type": "array", "prefixItems": [STR], "items": False},
        {"type": "array", "prefixItems": [STR, INT], "items": False},
        OK,
        "schema-false-replaced",
    ),
    Case(
        "10-item-appended-to-open-tuple",
        {"type": "array", "prefixItems": [STR]},
        {"type": "array", "prefixItems": [STR, INT]},
        "tuple-item-added-to-open-tuple",
        OK,
    ),
    Case(
        "10-tuple-closed",
        {"type": "array", "prefixItems": [STR]},
        {"type": "array", "prefixItems": [STR], "items": False},
        "schema-false",
        OK,
    ),
    Case(
        "10-unevaluatedItems-closes-after-prefix",
        {"type": "array", "prefixItems": [INT, {}], "unevaluatedItems": False},
        {"type": "array", "prefixItems": [INT], "unevaluatedItems": False},
        "schema-false",
        OK,
    ),
    Case(
        "10-tuple-maxItems-lowered",
        {"type": "array", "prefixItems": [STR, INT], "maxItems": 3},
        {"type": "array", "prefixItems": [STR, INT], "maxItems": 2},
        "limit-tightened",
        OK,
    ),
    Case(
        "10-tuple-maxItems-raised",
        {"type": "array", "prefixItems": [STR, INT], "maxItems": 2},
        {"type": "array", "prefixItems": [STR, INT], "maxItems": 3},
        OK,
        "limit-loosened",
    ),
    Case(
        "10-tuple-minItems-added",
        {"type": "array", "prefixItems": [STR, INT], "items": False},
        {"type": "array", "prefixItems": [STR, INT], "items": False, "minItems": 2},
        "limit-added",
        OK,
    ),
    Case(
        "10-tuple-minItems-removed",
        {"type": "array", "prefixItems": [STR, INT], "items": False, "minItems": 1},
        {"type": "array", "prefixItems": [STR, INT], "items": False},
        OK,
        "limit-removed",
    ),
    Case(
        "10-closed-tuple-maxItems-at-its-length",
        {"type": "array", "prefixItems": [STR, INT], "items": False},
        {"type": "array", "prefixItems": [STR, INT], "items": False, "maxItems": 2},
        OK,  # a closed tuple of two never has a third item
        OK,
    ),
    Case(
        "10-closed-tuple-maxItems-below-its-length",
        {"type": "array", "prefixItems": [STR, INT], "items": False},
        {"type": "array", "prefixItems": [STR, INT], "items": False, "maxItems": 1},
        "limit-tightened",
        OK,
    ),
    Case(
        "10-contains-minContains-0-is-no-constraint",
        {"type": "array", "contains": INT, "minContains": 0},
        {"type": "array", "contains": INT},
        "contains-changed",
        OK,
    ),
    Case(
        "10-contains-widened",
        {"type": "array", "contains": INT},
        {"type": "array", "contains": NUM},
        OK,
        "contains-changed",
    ),
    # -- 11. allOf, not, dependencies, if ------------------------------------------------
    Case(
        "11-allOf-subschema-added",
        {"allOf": [INT]},
        {"allOf": [INT, {"minimum": 0}]},
        "limit-added",
        OK,
    ),
    Case(
        "11-allOf-subschema-removed",
        {"allOf": [INT, {"minimum": 0}]},
        {"allOf": [INT]},
        OK,
        "limit-removed",
    ),
    Case(
        "11-not-excluded-set-narrowed",
        {"type": "integer", "not": {"enum": [1, 2, 3]}},
        {"type": "integer", "not": {"enum": [1]}},
        OK,
        "not-narrowed",
    ),
    Case("11-not-added", INT, {"type": "integer", "not": {"const": 0}}, "not-widened", OK),
    Case("11-not-added-disjoint", INT, {"type": "integer", "not": STR}, OK, OK),
    Case(
        "11-dependentRequired-added",
        obj({"a": INT, "b": INT}),
        obj({"a": INT, "b": INT}, dependentRequired={"a": ["b"]}),
        "dependency-added",
        OK,
    ),
    Case(
        "11-dependentSchemas-added",
        obj({"a": INT, "b": INT}),
        obj({"a": INT, "b": INT}, dependentSchemas={"a": {"required": ["b"]}}),
        "dependency-added",
        OK,
    ),
    Case(
        "11-dependentRequired-removed",
        obj({"a": INT, "b": INT}, dependentRequired={"a": ["b"]}),
        obj({"a": INT, "b": INT}),
        OK,
        "dependency-removed",
    ),
    Case(
        "11-dependentSchemas-removed",
        obj({"a": INT, "b": INT}, dependentSchemas={"a": {"required": ["b"]}}),
        obj({"a": INT, "b": INT}),
        OK,
        "dependency-removed",
    ),
    Case(
        "11-if-then-widened",
        {"type": "integer", "if": {"minimum": 10}, "then": {"multipleOf": 10}},
        {"type": "integer", "if": {"minimum": 10}, "then": {"multipleOf": 5}},
        OK,
        "multiple-of-changed",
    ),
    Case(
        "11-if-split-across-allOf-is-not-if-then",
        {"allOf": [{"if": INT}, {"then": {"minimum": 0}}]},
        {"if": INT, "then": {"minimum": 0}},
        "limit-added",
        OK,
    ),
    Case(
        "11-unevaluated-sees-every-matching-anyOf-branch",
        obj({}, anyOf=[obj({"p": {}}), obj({"q": {}})], unevaluatedProperties=False),
        {"anyOf": [closed({"p": {}}), closed({"q": {}})]},
        "union-branch-missing",  # {p, q} matches both old branches and neither new one
        # Truly compatible ({p} and {q} are valid under the old schema), but an
        # `unevaluatedProperties` beside an anyOf is judged as if it saw no branch: sound,
        # not complete.
        "property-added-to-closed-object",
    ),
    # -- 12. references ------------------------------------------------------------------
    Case(
        "12-inline-moved-to-defs",
        {"type": "string", "maxLength": 5},
        {"$ref": "#/$defs/Name"},
        OK,
        OK,
        new_defs={"Name": {"type": "string", "maxLength": 5}},
    ),
    Case(
        "12-moved-to-defs-and-narrowed",
        {"type": "string", "maxLength": 5},
        {"$ref": "#/$defs/Name"},
        "limit-tightened",
        OK,
        new_defs={"Name": {"type": "string", "maxLength": 3}},
    ),
    Case(
        "12-ref-with-siblings",
        {"$ref": "#/$defs/Num", "maximum": 10},
        {"$ref": "#/$defs/Num"},
        OK,
        "limit-removed",
        old_defs={"Num": NUM},
    ),
    Case(
        "12-ref-to-a-missing-definition",
        INT,
        {"$ref": "#/$defs/Missing"},
        UNRESOLVABLE,
        UNRESOLVABLE,
    ),
    Case(
        "12-referenced-definition-removed",
        {"$ref": "#/$defs/Name"},
        {"$ref": "#/$defs/Name"},
        UNRESOLVABLE,
        UNRESOLVABLE,
        old_defs={"Name": STR},
        new_defs={"Other": STR},
    ),
    Case(
        "12-remote-ref-never-fetched",
        STR,
        {"$ref": "https://example.com/schema.json"},
        UNRESOLVABLE,
        UNRESOLVABLE,
    ),
    Case(
        "12-ref-to-another-file",
        STR,
        {"$ref": "other.json#/$defs/Name"},
        UNRESOLVABLE,
        UNRESOLVABLE,
    ),
    Case(
        "12-ref-cycle-that-never-descends",
        INT,
        {"$ref": "#/$defs/A"},
        "ref-cycle",  # the validator recurses forever: it accepts nothing
        OK,  # as the included side, a schema accepting nothing is within anything
        new_defs={
            "A": {"$ref": "#/$defs/B"},
            "B": {"allOf": [{"$ref": "#/$defs/A"}], "type": "integer"},
        },
    ),
    Case(
        "12-recursive-unchanged",
        {"$ref": "#/$defs/Tree"},
        {"$ref": "#/$defs/Tree"},
        OK,
        OK,
        old_defs=TREE_OLD,
    ),
    Case(
        "12-recursive-deep-widened",
        {"$ref": "#/$defs/Tree"},
        {"$ref": "#/$defs/Tree"},
        OK,
        "type-widened",
        old_defs=TREE_OLD,
        new_defs=TREE_NUMBER,
    ),
    Case(
        "12-recursive-required-added-deep",
        {"$ref": "#/$defs/Tree"},
        {"$ref": "#/$defs/Tree"},
        "property-made-required",
        OK,
        old_defs=TREE_OLD,
        new_defs=TREE_LABEL_REQUIRED,
    ),
    Case(
        "12-mutual-recursion-widened",
        {"$ref": "#/$defs/A"},
        {"$ref": "#/$defs/A"},
        OK,
        "type-widened",
        old_defs=MUTUAL_OLD,
        new_defs=MUTUAL_NUMBER,
    ),
    Case(
        "12-mutual-recursion-required-added",
        {"$ref": "#/$defs/A"},
        {"$ref": "#/$defs/A"},
        "property-made-required",
        OK,
        old_defs=MUTUAL_OLD,
        new_defs=MUTUAL_REQUIRED,
    ),
    # -- 13. annotations and unknown keywords -----------------------------------------------
    Case(
        "13-annotations-changed",
        {"type": "integer", "title": "A", "description": "a", "examples": [1], "$comment": "c"},
        {"type": "integer", "title": "B", "description": "b", "examples": [2]},
        OK,
        OK,
    ),
    Case("13-x-annotation-added", INT, {"type": "integer", "x-unit": "seconds"}, OK, OK),
    Case("13-nullable-added", STR, {"type": "string", "nullable": True}, "undecidable-keyword", OK),
    Case(
        "13-nullable-unchanged",
        {"type": "string", "nullable": True},
        {"type": "string", "nullable": True, "title": "t"},
        OK,
        OK,
    ),
    Case(
        "13-unknown-keyword-changed",
        {"type": "string", "nullable": True},
        {"type": "string", "nullable": False},
        "undecidable-keyword",
        "undecidable-keyword",
    ),
    # -- false and true --------------------------------------------------------------------
    Case("false-to-anything", False, INT, OK, "schema-false-replaced"),
    Case("anything-to-true", INT, True, OK, "type-widened"),
]


def contract(
    fragment: Any, where: Side, defs: dict[str, Any], *, root: bool = False, **extra: Any
) -> TaskContract:
    """The fragment as the schema of parameter `x` (required, closed params), as the
    whole `params` schema (`root`), or as `returns`."""
    if root:
        document = {**make_contract(TASK, **extra), "params": fragment}
    elif where == "params":
        document = make_contract(TASK, properties={"x": fragment}, **extra)
    else:
        document = make_contract(TASK, returns=fragment, **extra)
    if defs:
        document["$defs"] = defs
    return TaskContract(document)


def resolves(path: str, contract: TaskContract) -> bool:
    try:
        jsonpointer.resolve_pointer(contract.to_dict(), path)
    except jsonpointer.JsonPointerException:
        return False
    return True


IN_OLD = " (the path is in the old contract)"


def where(violation: Incompatibility, old: TaskContract, new: TaskContract) -> TaskContract:
    """The contract a violation's path points into: the new one, unless it says old."""
    return old if violation.message.endswith(IN_OLD) else new


def assert_verdict(
    found: list[Incompatibility],
    expected: Verdict,
    *,
    side: Side,
    direction: Direction,
    old: TaskContract,
    new: TaskContract,
) -> None:
    if expected is OK:
        assert found == [], [f"{v.rule} {v.path}: {v.message}" for v in found]
        return
    assert found, f"expected {expected}, but the change was judged compatible"
    assert expected in {v.rule for v in found}, [(v.rule, v.path) for v in found]
    for violation in found:
        assert violation.side == side
        assert violation.direction is direction
        assert violation.message
        assert violation.path.startswith(("/params", "/returns", "/$defs"))
        assert resolves(violation.path, where(violation, old, new)), violation


RUNS = [(case, side) for case in CASES for side in case.sides]


@pytest.mark.parametrize(("case", "side"), RUNS, ids=[f"{c.id}-{side}" for c, side in RUNS])
def test_rule(case: Case, side: Side) -> None:
    new_defs = case.old_defs if case.new_defs is None else case.new_defs
    old = contract(case.old, side, case.old_defs, root=case.root)
    if UNRESOLVABLE in (case.backward, case.forward):
        assert case.backward == case.forward == UNRESOLVABLE
        # Refused before any comparison: an unresolvable ref is an error, not compatible.
        with pytest.raises(ContractError) as refused:
            contract(case.new, side, new_defs, root=case.root)
        assert [v.path.rpartition("/")[2] for v in refused.value.violations] == ["$ref"]
        return
    new = contract(case.new, side, new_defs, root=case.root)
    # params: BACKWARD is old ⊆ new. returns: the roles flip, BACKWARD is new ⊆ old.
    expected = {
        Direction.BACKWARD: case.backward if side == "params" else case.forward,
        Direction.FORWARD: case.forward if side == "params" else case.backward,
    }
    for direction, verdict in expected.items():
        found = [v for v in compare(old, new, direction) if v.side == side]
        assert_verdict(found, verdict, side=side, direction=direction, old=old, new=new)
        # The other side is untouched by the change.
        assert all(v.side == side for v in compare(old, new, direction))


def test_cases_cover_every_rule_both_ways() -> None:
    """Each rule number has a change refused and one allowed, backward and forward."""
    for number in range(1, 14):
        mine = [c for c in CASES if c.id.split("-")[0] == str(number)]
        assert any(c.backward is OK for c in mine), number
        assert any(c.backward is not OK for c in mine), number
        assert any(c.forward is OK for c in mine), number
        assert any(c.forward is not OK for c in mine), number


def test_identical_contracts_are_compatible_in_every_mode() -> None:
    for case in CASES:
        for side in case.sides:
            old = contract(case.old, side, case.old_defs, root=case.root)
            same = contract(
                copy.deepcopy(case.old), side, copy.deepcopy(case.old_defs), root=case.root
            )
            for mode in CompatibilityMode:
                report = check_compatibility(same, [(1, old)], mode)
                assert report.compatible, (case.id, side, mode, report.violations)


# -- the failures of other checkers ------------------------------------------------------

KARAPACE_ACCEPTS_BACKWARD = [
    "6-made-required",
    "4-multipleOf-added",
    "4-uniqueItems-added",
    "3-const-changed",
    "5-format-added",
]


@pytest.mark.parametrize("case_id", KARAPACE_ACCEPTS_BACKWARD)
def test_what_karapace_calls_backward_compatible_is_refused(case_id: str) -> None:
    case = next(c for c in CASES if c.id == case_id)
    old, new = contract(case.old, "params", {}), contract(case.new, "params", {})
    report = check_compatibility(new, [(1, old)], CompatibilityMode.BACKWARD)
    assert not report.compatible
    assert case.backward in {v.rule for v in report.violations}


def test_an_added_oneof_branch_that_can_overlap_is_refused() -> None:
    old = contract({"oneOf": [INT, STR]}, "params", {})
    for added in (NUM, {"type": "string", "format": "email"}, {}, {"minimum": 0}):
        new = contract({"oneOf": [INT, STR, added]}, "params", {})
        found = compare(old, new, Direction.BACKWARD)
        assert {(v.rule, v.path) for v in found} == {
            ("one-of-branch-overlaps", "/params/properties/x/oneOf/2")
        }, added


def test_optional_property_added_to_an_open_object_says_why() -> None:
    old = contract(obj({"a": INT}), "params", {})
    new = contract(obj({"a": INT, "b": STR}), "params", {})
    [violation] = compare(old, new, Direction.BACKWARD)
    assert violation.rule == "property-added-to-open-object"
    assert violation.path == "/params/properties/x/properties/b"
    assert "open" in violation.message
    assert "may already carry 'b'" in violation.message


# -- params only: defaults and positions -----------------------------------------------------


def params(properties: dict[str, Any], *required: str) -> TaskContract:
    return TaskContract(make_contract(TASK, properties=properties, required=list(required)))


def test_parameter_made_required_with_a_default_is_backward_compatible() -> None:
    old = params({"x": INT}, "x")
    new = params({"x": INT, "y": {"type": "string", "default": "a"}}, "x", "y")
    assert compare(old, new, Direction.BACKWARD) == []
    assert check_compatibility(new, [(1, old)], CompatibilityMode.BACKWARD).compatible
    # An existing optional parameter made required, with a default: the same.
    old = params({"x": INT, "y": {"type": "string", "default": "a"}}, "x")
    assert compare(old, new, Direction.BACKWARD) == []


def test_parameter_made_required_without_a_default_is_refused() -> None:
    old = params({"x": INT, "y": STR}, "x")
    new = params({"x": INT, "y": STR}, "x", "y")
    [violation] = compare(old, new, Direction.BACKWARD)
    assert (violation.rule, violation.path) == ("property-made-required", "/params/required/1")


def test_removing_the_default_of_a_required_parameter_is_refused() -> None:
    # Old producers may omit `y`: the old decoder filled it in, the new one does not.
    old = params({"x": INT, "y": {"type": "string", "default": "a"}}, "x", "y")
    new = params({"x": INT, "y": STR}, "x", "y")
    assert [v.rule for v in compare(old, new, Direction.BACKWARD)] == ["property-made-required"]
    assert compare(old, new, Direction.FORWARD) == []


def test_a_default_filled_into_a_call_must_pass_every_schema_for_it() -> None:
    old = TaskContract(make_contract(TASK, properties={"x": INT}))
    document = make_contract(
        TASK, properties={"x": INT, "y_1": {"type": "string", "default": "abc"}}
    )
    document["params"]["patternProperties"] = {"^y_": {"maxLength": 2}}
    new = TaskContract(document)
    rules = {v.rule for v in compare(old, new, Direction.BACKWARD)}
    assert rules == {"default-refused"}


def test_a_default_filled_next_to_maxproperties_cannot_be_judged() -> None:
    old = params({"x": INT}, "x")
    document = make_contract(TASK, properties={"x": INT, "y": {"type": "integer", "default": 1}})
    document["params"]["required"] = ["x"]
    document["params"]["maxProperties"] = 1
    new = TaskContract(document)
    rules = {(v.rule, v.path) for v in compare(old, new, Direction.BACKWARD)}
    assert ("default-fill-conflict", "/params/properties/y/default") in rules


def test_a_changed_default_is_a_warning_not_a_violation() -> None:
    old = params({"x": {"type": "integer", "default": 1}})
    new = params({"x": {"type": "integer", "default": 2}})
    for mode in (CompatibilityMode.BACKWARD, CompatibilityMode.FULL_TRANSITIVE):
        report = check_compatibility(new, [(1, old)], mode)
        assert report.compatible
        assert report.violations == []
        [warning] = report.warnings
        assert (warning.rule, warning.path, warning.version) == (
            "default-changed",
            "/params/properties/x/default",
            1,
        )
        assert warning.direction is None
    assert check_compatibility(new, [(1, old)], CompatibilityMode.NONE).warnings == []


@pytest.mark.parametrize(
    ("old_names", "new_names"),
    [
        (["a", "b"], ["b", "a"]),  # reordered
        (["a", "b"], ["z", "a", "b"]),  # inserted before the others
        (["a", "b"], ["a", "z", "b"]),  # inserted in between
        (["a", "b", "c"], ["a", "c"]),  # removed from the middle
    ],
)
def test_parameter_positions_are_kept(old_names: list[str], new_names: list[str]) -> None:
    optional = {"type": "integer", "default": 0}
    old = params(dict.fromkeys(old_names, optional))
    new = params(dict.fromkeys(new_names, optional))
    for direction in Direction:
        positions = [
            v for v in compare(old, new, direction) if v.rule == "parameter-position-changed"
        ]
        assert len(positions) == 1, direction
        assert positions[0].path == "/params/properties"
        assert "position" in positions[0].message


def test_appending_an_optional_parameter_is_backward_compatible_only() -> None:
    old = params({"a": INT}, "a")
    new = params({"a": INT, "b": {"type": "integer", "default": 0}}, "a")
    assert compare(old, new, Direction.BACKWARD) == []
    forward = {v.rule for v in compare(old, new, Direction.FORWARD)}
    assert "parameter-position-changed" in forward  # old workers take one positional arg


# -- reporting ---------------------------------------------------------------------------------


def test_every_violation_is_reported() -> None:
    old = TaskContract(
        make_contract(
            TASK,
            properties={"a": INT, "b": STR, "c": {"type": "array"}},
            required=["a"],
        )
    )
    new = TaskContract(
        make_contract(
            TASK,
            properties={
                "a": {"type": "integer", "maximum": 10},
                "b": {"type": "string", "format": "uuid"},
                "c": {"type": "array", "uniqueItems": True},
            },
            required=["a"],
        )
    )
    report = check_compatibility(new, [(1, old)], CompatibilityMode.BACKWARD)
    found = {(v.path, v.rule) for v in report.violations}
    assert found == {
        ("/params/properties/a/maximum", "limit-added"),
        ("/params/properties/b/format", "format-added"),
        ("/params/properties/c/uniqueItems", "unique-items-added"),
    }
    assert len(report.violations) == 3


def test_returns_violations_say_who_breaks() -> None:
    old = TaskContract(make_contract(TASK, returns=INT))
    new = TaskContract(make_contract(TASK, returns=NUM))
    [violation] = compare(old, new, Direction.BACKWARD)
    assert (violation.side, violation.path, violation.rule) == (
        "returns",
        "/returns/type",
        "type-widened",
    )
    assert "readers still on the older contract" in consequence("returns", Direction.BACKWARD)
    assert violation.message.endswith(consequence("returns", Direction.BACKWARD))
    assert compare(old, new, Direction.FORWARD) == []


def test_paths_point_into_the_old_contract_where_something_was_removed() -> None:
    old = contract({"type": "array", "items": INT}, "params", {})
    new = contract({"type": "array"}, "params", {})
    [violation] = compare(old, new, Direction.FORWARD)
    assert violation.rule == "type-widened"
    assert violation.path == "/params/properties/x/items/type"
    assert violation.message.endswith(IN_OLD)
    assert resolves(violation.path, old)
    assert not resolves(violation.path, new)


# -- wording when the roles flip -----------------------------------------------------------


@dataclass(frozen=True)
class Flipped:
    """An edit checked where the new schema is the one included (returns BACKWARD,
    params FORWARD): the rule and sentence must still describe the edit old → new."""

    id: str
    side: Side
    direction: Direction
    old: Any
    new: Any
    rule: str
    path: str
    edit: str  # the sentence up to the consequence


ARRAY = {"type": "array"}
FLIPPED = [
    Flipped(
        "maximum-removed-from-returns",
        "returns",
        Direction.BACKWARD,
        {"type": "integer", "maximum": 5},
        INT,
        "limit-removed",
        "/returns/maximum",
        "maximum removed (was 5)",
    ),
    Flipped(
        "format-removed-from-returns",
        "returns",
        Direction.BACKWARD,
        {"type": "string", "format": "email"},
        STR,
        "format-removed",
        "/returns/format",
        "format 'email' removed: the new schema accepts values that fail it",
    ),
    Flipped(
        "integer-to-number-in-params-forward",
        "params",
        Direction.FORWARD,
        INT,
        NUM,
        "type-widened",
        "/params/properties/x/type",
        "type integer became number: number now accepted",
    ),
    Flipped(
        "maximum-raised",
        "returns",
        Direction.BACKWARD,
        {"type": "integer", "maximum": 5},
        {"type": "integer", "maximum": 9},
        "limit-loosened",
        "/returns/maximum",
        "maximum loosened to 9 (was 5)",
    ),
    Flipped(
        "multipleOf-removed",
        "params",
        Direction.FORWARD,
        {"type": "integer", "multipleOf": 3},
        INT,
        "multiple-of-removed",
        "/params/properties/x/multipleOf",
        "multipleOf removed (was 3)",
    ),
    Flipped(
        "pattern-removed",
        "returns",
        Direction.BACKWARD,
        {"type": "string", "pattern": "^a"},
        STR,
        "pattern-removed",
        "/returns/pattern",
        "pattern '^a' removed: the new schema accepts values that fail it",
    ),
    Flipped(
        "uniqueItems-removed",
        "params",
        Direction.FORWARD,
        {"type": "array", "uniqueItems": True},
        ARRAY,
        "unique-items-removed",
        "/params/properties/x/uniqueItems",
        "uniqueItems removed: arrays with repeated items are accepted",
    ),
    Flipped(
        "enum-value-added",
        "returns",
        Direction.BACKWARD,
        {"enum": ["a"]},
        {"enum": ["a", "b"]},
        "enum-widened",
        "/returns/enum",
        "['b'] accepted by the new schema, refused by the old one (enum)",
    ),
    Flipped(
        "enum-removed",
        "params",
        Direction.FORWARD,
        {"type": "string", "enum": ["a"]},
        STR,
        "enum-removed",
        "/params/properties/x/enum",
        "enum ['a'] removed: the new schema allows other values too",
    ),
    Flipped(
        "const-removed",
        "returns",
        Direction.BACKWARD,
        {"type": "string", "const": "a"},
        STR,
        "const-removed",
        "/returns/const",
        "const 'a' removed: the new schema allows other values too",
    ),
    Flipped(
        "anyOf-branch-added",
        "params",
        Direction.FORWARD,
        {"anyOf": [INT, STR]},
        {"anyOf": [INT, STR, NULL]},
        "union-branch-added",
        "/params/properties/x/anyOf/2",
        (
            "anyOf branch 2 of the new schema accepts values that no anyOf branch of the old "
            "schema accepted (closest: branch 0)"
        ),
    ),
    Flipped(
        "oneOf-overlap-removed",
        "returns",
        Direction.BACKWARD,
        {"oneOf": [NUM, INT]},
        NUM,
        "one-of-overlap-accepted",
        "/returns",
        (
            "the new schema accepts values that may match both oneOf branches 0 and 1 of the old "
            "one, which refused them for matching two"
        ),
    ),
    Flipped(
        "not-removed",
        "params",
        Direction.FORWARD,
        {"type": "integer", "not": {"const": 0}},
        INT,
        "not-narrowed",
        "/params/properties/x/not",
        "`not` removed or narrowed: the new schema accepts values the old one excluded",
    ),
    Flipped(
        "object-opened",
        "returns",
        Direction.BACKWARD,
        closed({"a": INT}),
        obj({"a": INT}),
        "object-opened",
        "/returns/additionalProperties",
        "the new object accepts properties it does not declare; the old one refused them",
    ),
    Flipped(
        "dropped-from-required",
        "params",
        Direction.FORWARD,
        closed({"a": INT}, "a"),
        closed({"a": INT}),
        "property-made-optional",
        "/params/properties/x/required/0",
        "'a' is no longer required; the old schema requires it",
    ),
    Flipped(
        "property-added-to-closed",
        "returns",
        Direction.BACKWARD,
        closed({"a": INT}),
        closed({"a": INT, "b": STR}),
        "property-added-to-closed-object",
        "/returns/properties/b",
        "'b' is declared now, but the old object is closed: it refuses documents carrying 'b'",
    ),
    Flipped(
        "property-removed-from-open",
        "params",
        Direction.FORWARD,
        obj({"a": INT, "b": STR}),
        obj({"a": INT}),
        "property-removed-from-open-object",
        "/params/properties/x/properties/b",
        (
            "'b' is no longer declared, and the new object is open: new documents may carry 'b' "
            "with values its old schema refuses"
        ),
    ),
    Flipped(
        "dependentRequired-removed",
        "returns",
        Direction.BACKWARD,
        obj({"a": INT, "b": INT}, dependentRequired={"a": ["b"]}),
        obj({"a": INT, "b": INT}),
        "dependency-removed",
        "/returns/dependentRequired/a",
        (
            "dependency removed: the old schema requires ['b'] when 'a' is present, the new one "
            "does not"
        ),
    ),
    Flipped(
        "propertyNames-removed",
        "params",
        Direction.FORWARD,
        obj({}, propertyNames={"maxLength": 3}),
        obj({}),
        "property-names-removed",
        "/params/properties/x/propertyNames",
        "propertyNames removed: the new schema accepts names the old one refused",
    ),
    Flipped(
        "tuple-item-removed-from-open-tuple",
        "returns",
        Direction.BACKWARD,
        {"type": "array", "prefixItems": [STR, INT]},
        {"type": "array", "prefixItems": [STR]},
        "tuple-item-removed-from-open-tuple",
        "/returns/prefixItems/1",
        "item 1 had a schema in the old tuple; the new one is open there and accepts any value",
    ),
    Flipped(
        "item-appended-to-closed-tuple",
        "params",
        Direction.FORWARD,
        {"type": "array", "prefixItems": [STR], "items": False},
        {"type": "array", "prefixItems": [STR, INT], "items": False},
        "schema-false-replaced",
        "/params/properties/x/prefixItems/1",
        "the old schema here was false (it accepted nothing); the new one accepts values",
    ),
    Flipped(
        "contains-removed",
        "returns",
        Direction.BACKWARD,
        {"type": "array", "contains": INT},
        ARRAY,
        "contains-changed",
        "/returns/contains",
        (
            "`contains` removed or widened: the old schema required items matching it (1 to any "
            "number) that new arrays are not proved to have"
        ),
    ),
    Flipped(
        "patternProperties-removed",
        "params",
        Direction.FORWARD,
        obj({}, patternProperties={"^x_": INT}),
        obj({}),
        "pattern-properties-changed",
        "/params/properties/x/patternProperties/^x_",
        (
            "pattern '^x_' removed: names it matched may now carry values it refused (regex "
            "overlap is not decided)"
        ),
    ),
    Flipped(
        "unknown-keyword-removed",
        "returns",
        Direction.BACKWARD,
        {"type": "string", "nullable": True},
        STR,
        "undecidable-keyword",
        "/returns/nullable",
        (
            "'nullable' is not understood by the checker; it was removed or changed, so "
            "compatibility cannot be proved"
        ),
    ),
]


@pytest.mark.parametrize("case", FLIPPED, ids=[case.id for case in FLIPPED])
def test_flipped_roles_describe_the_edit(case: Flipped) -> None:
    old, new = contract(case.old, case.side, {}), contract(case.new, case.side, {})
    first = compare(old, new, case.direction)[0]
    assert (first.rule, first.path) == (case.rule, case.path)
    edit, _, rest = first.message.partition("; " + consequence(case.side, case.direction))
    assert edit == case.edit
    # A path into the old contract (where something was removed) says so.
    assert rest == (IN_OLD if not resolves(first.path, new) else "")
    assert resolves(first.path, where(first, old, new))


def rules_found() -> set[str]:
    """Every rule id the table cases produce, in every direction."""
    found = set()
    for case in CASES:
        if case.backward == UNRESOLVABLE:
            continue
        new_defs = case.old_defs if case.new_defs is None else case.new_defs
        for side in case.sides:
            old = contract(case.old, side, case.old_defs, root=case.root)
            new = contract(case.new, side, new_defs, root=case.root)
            for direction in Direction:
                found.update(v.rule for v in compare(old, new, direction))
    for flipped in FLIPPED:
        old, new = contract(flipped.old, flipped.side, {}), contract(flipped.new, flipped.side, {})
        found.update(v.rule for v in compare(old, new, flipped.direction))
    return found


def test_every_rule_id_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Compatibility", 1)[1].split("\n## ", 1)[0]
    assert not {rule for rule in rules_found() if f"`{rule}`" not in section}


# -- transitive modes ----------------------------------------------------------------------------


def versions() -> tuple[TaskContract, TaskContract, TaskContract]:
    """v2 narrows x to at most 100 (refused backward against v1); v3 keeps v2's limit and
    widens x by null: compatible with v2, not backward with v1."""
    v1 = contract(INT, "params", {})
    v2 = contract({"type": "integer", "maximum": 100}, "params", {})
    v3 = contract({"type": ["integer", "null"], "maximum": 100}, "params", {})
    return v1, v2, v3


def test_backward_transitive_checks_every_earlier_version() -> None:
    v1, v2, v3 = versions()
    earlier = [(1, v1), (2, v2)]
    assert check_compatibility(v3, earlier, CompatibilityMode.BACKWARD).compatible
    report = check_compatibility(v3, earlier, CompatibilityMode.BACKWARD_TRANSITIVE)
    assert not report.compatible
    assert {(v.version, v.rule, v.direction) for v in report.violations} == {
        (1, "limit-added", Direction.BACKWARD)
    }


def test_forward_transitive_checks_every_earlier_version() -> None:
    # Forward: new ⊆ old. v3 (at most 50) is within v2 (at most 100), not within v1 (10).
    v1 = contract({"type": "integer", "maximum": 10}, "params", {})
    v2 = contract({"type": "integer", "maximum": 100}, "params", {})
    v3 = contract({"type": "integer", "maximum": 50}, "params", {})
    earlier = [(1, v1), (2, v2)]
    assert check_compatibility(v3, earlier, CompatibilityMode.FORWARD).compatible
    report = check_compatibility(v3, earlier, CompatibilityMode.FORWARD_TRANSITIVE)
    assert {(v.version, v.rule, v.direction) for v in report.violations} == {
        (1, "limit-loosened", Direction.FORWARD)
    }


def test_full_transitive_checks_both_ways_against_every_version() -> None:
    v1 = contract(obj({"a": INT}), "returns", {})
    v2 = contract(obj({"a": INT, "b": {}}), "returns", {})  # the same documents as v1
    v3 = contract(obj({"a": INT, "b": {}, "c": {"title": "c"}}), "returns", {})
    earlier = [(1, v1), (2, v2)]
    assert check_compatibility(v3, earlier, CompatibilityMode.FULL_TRANSITIVE).compatible
    v4 = contract(obj({"a": NUM, "b": {}}), "returns", {})
    assert not check_compatibility(v4, [(1, v1), (2, v2)], CompatibilityMode.FULL).compatible
    v5 = contract(obj({"a": INT, "b": {}}, "a"), "returns", {})  # v1 and v2 lack `required`
    full = check_compatibility(v5, [(1, v1), (2, v2)], CompatibilityMode.FULL)
    transitive = check_compatibility(v5, [(1, v1), (2, v2)], CompatibilityMode.FULL_TRANSITIVE)
    assert {(v.version, v.direction) for v in full.violations} == {(2, Direction.FORWARD)}
    assert {(v.version, v.direction) for v in transitive.violations} == {
        (1, Direction.FORWARD),
        (2, Direction.FORWARD),
    }


def test_full_needs_both_directions() -> None:
    v1, v2, _ = versions()
    report = check_compatibility(v2, [(1, v1)], CompatibilityMode.FULL)
    assert {v.direction for v in report.violations} == {Direction.BACKWARD}
    report = check_compatibility(v1, [(1, v2)], CompatibilityMode.FULL)
    assert {v.direction for v in report.violations} == {Direction.FORWARD}


def test_none_is_always_compatible() -> None:
    v1 = contract(INT, "params", {})
    v2 = contract(STR, "params", {})
    report = check_compatibility(v2, [(1, v1)], CompatibilityMode.NONE)
    assert report.compatible
    assert report.violations == []


def test_no_earlier_version_is_compatible() -> None:
    for mode in CompatibilityMode:
        assert check_compatibility(contract(INT, "params", {}), [], mode).compatible


# -- references: errors and cycles ---------------------------------------------------------


def test_an_assumption_that_failed_is_not_remembered_as_proved() -> None:
    """Under comparison, P ⊆ Q is assumed; C ⊆ D is proved from it; then P ⊆ Q fails
    (k: integer vs string). C ⊆ D must not be remembered as proved: `y` breaks."""
    old_defs = {
        "P": obj({"c": {"$ref": "#/$defs/C"}, "k": INT}),
        "C": obj({"p": {"$ref": "#/$defs/P"}}),
    }
    new_defs = {
        "Q": obj({"c": {"$ref": "#/$defs/D"}, "k": STR}),
        "D": obj({"p": {"$ref": "#/$defs/Q"}}),
    }
    old = TaskContract(
        make_contract(
            TASK,
            properties={"x": {"$ref": "#/$defs/P"}, "y": {"$ref": "#/$defs/C"}},
            **{"$defs": old_defs},
        )
    )
    new = TaskContract(
        make_contract(
            TASK,
            properties={"x": {"anyOf": [{"$ref": "#/$defs/Q"}, {}]}, "y": {"$ref": "#/$defs/D"}},
            **{"$defs": new_defs},
        )
    )
    found = compare(old, new, Direction.BACKWARD)
    assert found, "C ⊆ D was taken as proved from the failed assumption P ⊆ Q"
    assert {v.rule for v in found} == {"type-changed"}
