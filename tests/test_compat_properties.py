"""Soundness of the compatibility checker, checked against the validator itself.

Random contracts are built, changed by 1-3 random mutations, and compared. Whenever the
checker calls a side compatible in a direction, documents are drawn from the schema
that must be included (hypothesis-jsonschema) and each one the decoder accepts there
must be accepted by the decoder of the including schema (jsonschema 2020-12, formats
asserted, top-level parameter defaults filled in as the decoder does).

The schemas use what contracts use: scalars with limits and formats, arrays and tuples
(`prefixItems`), objects with `patternProperties`, `dependentRequired` and object-level
`if`/`then`, `anyOf`/`oneOf`/`allOf`, a recursive definition in `$defs`, and at the
params root a list of the calls allowed (`enum`/`const`) next to defaulted parameters.
hypothesis-jsonschema speaks draft 7, so documents are drawn from a draft-7 translation
(recursion unrolled a few levels: a narrower schema, whose documents are still valid).
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from taskschema import CompatibilityMode, ContractError, Direction, TaskContract
from taskschema._compat import check_compatibility, compare
from taskschema._contract import bundle

FORMATS = ("date-time", "email", "uuid")
NAMES = ("a", "b", "c", "d", "e", "x_a")  # x_a: matched by PATTERN
PATTERN = "^x_"
SCALARS: list[Any] = [0, 1, 2, -1, 1.5, "a", "b", "", True, False, None]
LIMITS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
)
CUSTOM_FORMATS = {"uuid": st.uuids().map(str)}
FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)

Draw = Callable[[st.SearchStrategy[Any]], Any]


# -- random schemas ---------------------------------------------------------------------


def limit_value(draw: Draw, keyword: str) -> int:
    if keyword == "multipleOf":
        return int(draw(st.sampled_from([1, 2, 3, 4])))
    if keyword.startswith(("min", "max")) and keyword.endswith(("Length", "Items")):
        return int(draw(st.integers(0, 4)))
    return int(draw(st.integers(-3, 5)))


def scalar_schema(draw: Draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["integer", "number", "string", "boolean", "null", "enum"]))
    if kind == "enum":
        return {
            "enum": draw(st.lists(st.sampled_from(SCALARS), min_size=1, max_size=3, unique_by=repr))
        }
    schema: dict[str, Any] = {"type": kind}
    if kind in ("integer", "number"):
        for keyword in draw(st.lists(st.sampled_from(LIMITS[:5]), max_size=2, unique=True)):
            schema[keyword] = limit_value(draw, keyword)
    if kind == "string":
        for keyword in draw(st.lists(st.sampled_from(LIMITS[5:7]), max_size=2, unique=True)):
            schema[keyword] = limit_value(draw, keyword)
        if draw(st.integers(0, 3)) == 0:
            schema["format"] = draw(st.sampled_from(FORMATS))
    if kind != "null" and draw(st.integers(0, 3)) == 0:
        schema["type"] = [kind, "null"]
    return schema


def any_schema(draw: Draw, depth: int) -> dict[str, Any]:
    kinds = ["scalar"] * 5
    if depth > 0:
        kinds += ["array", "object", "anyOf", "tuple", "allOf", "if-then"]
    kind = draw(st.sampled_from(kinds))
    if kind == "array":
        return array_schema(draw, depth - 1)
    if kind == "tuple":
        return tuple_schema(draw, depth - 1)
    if kind == "object":
        return object_schema(draw, depth - 1)
    if kind == "anyOf":
        return {"anyOf": [any_schema(draw, depth - 1) for _ in range(draw(st.integers(1, 3)))]}
    if kind == "allOf":
        base = any_schema(draw, depth - 1)
        return {"allOf": [base, constraint_for(draw, base)]}
    if kind == "if-then":
        return conditional_schema(draw)
    return scalar_schema(draw)


def types_of(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    return [] if declared is None else [declared] if isinstance(declared, str) else list(declared)


def constraint_for(draw: Draw, base: dict[str, Any]) -> dict[str, Any]:
    """A schema of one constraint that fits `base`'s type: an `allOf` member."""
    types = types_of(base)
    if "integer" in types or "number" in types:
        keyword = draw(st.sampled_from(LIMITS[:5]))
    elif "string" in types:
        keyword = draw(st.sampled_from([*LIMITS[5:7], "pattern", "format"]))
    elif "array" in types:
        keyword = draw(st.sampled_from(LIMITS[7:]))
    elif "object" in types:
        names = sorted(base.get("properties", {})) or list(NAMES[:1])
        options: list[dict[str, Any]] = [
            {"required": [names[0]]},
            {"maxProperties": 1},
            {"minProperties": 1},
        ]
        return options[draw(st.integers(0, len(options) - 1))]
    else:
        return {"not": {"type": draw(st.sampled_from(["null", "string"]))}}
    if keyword == "pattern":
        return {"pattern": draw(st.sampled_from(["^a", "b"]))}
    if keyword == "format":
        return {"format": draw(st.sampled_from(FORMATS))}
    return {keyword: limit_value(draw, keyword)}


def conditional_schema(draw: Draw) -> dict[str, Any]:
    """A scalar whose constraint depends on another (`if`/`then`, maybe `else`)."""
    if draw(st.booleans()):
        schema: dict[str, Any] = {
            "type": draw(st.sampled_from(["integer", "number"])),
            "if": {"minimum": limit_value(draw, "minimum")},
            "then": {"multipleOf": limit_value(draw, "multipleOf")},
        }
        if draw(st.booleans()):
            schema["else"] = {"maximum": limit_value(draw, "maximum")}
        return schema
    return {
        "type": "string",
        "if": {"maxLength": limit_value(draw, "maxLength")},
        "then": {"pattern": draw(st.sampled_from(["^a", "b"]))},
    }


def array_schema(draw: Draw, depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": any_schema(draw, depth)}
    for keyword in draw(st.lists(st.sampled_from(LIMITS[7:]), max_size=2, unique=True)):
        schema[keyword] = limit_value(draw, keyword)
    if draw(st.booleans()):
        schema["uniqueItems"] = True
    return schema


def tuple_schema(draw: Draw, depth: int) -> dict[str, Any]:
    """A tuple (as positional arguments are): `prefixItems`, then closed, open or typed."""
    count = draw(st.integers(1, 3))
    schema: dict[str, Any] = {
        "type": "array",
        "prefixItems": [any_schema(draw, depth) for _ in range(count)],
    }
    rest = draw(st.sampled_from(["open", "closed", "schema"]))
    if rest != "open":
        schema["items"] = False if rest == "closed" else scalar_schema(draw)
    for keyword in draw(st.lists(st.sampled_from(LIMITS[7:]), max_size=1)):
        schema[keyword] = limit_value(draw, keyword)
    return schema


def object_schema(draw: Draw, depth: int) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: any_schema(draw, depth) for name in names},
    }
    # Mostly required: a value that is present is a value that is checked.
    required = [name for name in names if draw(st.integers(0, 3)) > 0]
    if required:
        schema["required"] = required
    additional = draw(st.sampled_from(["absent", "false", "true", "schema"]))
    if additional != "absent":
        schema["additionalProperties"] = {
            "false": False,
            "true": True,
            "schema": scalar_schema(draw) if additional == "schema" else None,
        }[additional]
    if draw(st.integers(0, 4)) == 0:
        schema["patternProperties"] = {PATTERN: scalar_schema(draw)}
    if len(names) > 1 and draw(st.integers(0, 4)) == 0:
        schema["dependentRequired"] = {names[0]: [names[1]]}
    if len(names) > 1 and draw(st.integers(0, 5)) == 0:
        schema["if"] = {"required": [names[0]]}
        schema["then"] = {"required": [names[1]]}
    return schema


def tree_schema(draw: Draw) -> dict[str, Any]:
    """A recursive definition `T`: a value and children of the same kind."""
    return {
        "type": "object",
        "properties": {
            "v": scalar_schema(draw),
            "kids": {"type": "array", "items": {"$ref": "#/$defs/T"}},
        },
        "required": ["v"],
        "additionalProperties": draw(st.booleans()),
    }


def default_for(schema: dict[str, Any]) -> Any:
    """A default valid for a bare scalar schema, else a sentinel."""
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared]
    for value in (None, 0, "a", False):
        kind = {type(None): "null", int: "integer", str: "string", bool: "boolean"}[type(value)]
        if kind in types and set(schema) == {"type"}:
            return value
    return ...


def params_schema(draw: Draw) -> dict[str, Any]:
    schema = object_schema(draw, 1)
    for prop in schema["properties"].values():
        if draw(st.integers(0, 3)) == 0 and default_for(prop) is not ...:
            prop["default"] = default_for(prop)
    return schema


def example(draw: Draw, schema: Any, defs: dict[str, Any]) -> Any:
    """A value `schema` accepts: one of INTERESTING and ADDED, else one drawn from it;
    `...` when there is none."""
    check = validator(as_json({"allOf": [schema], "$defs": defs}))
    fitting = [value for value in [*INTERESTING, *ADDED] if check.is_valid(value)]
    if fitting:
        return draw(st.sampled_from(fitting))
    strategy = generator(as_json({"$schema": DRAFT_7, **as_draft_7({"allOf": [schema]}, defs)}))
    try:
        if strategy.is_empty:
            return ...
        value = draw(strategy)
    # What hypothesis-jsonschema cannot draw from (its own asserts fail on some schemas).
    except (InvalidArgument, SchemaError, AssertionError):
        return ...
    return value if check.is_valid(value) else ...


def call_for(draw: Draw, params: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A call to list at the params root: required parameters mostly valid, defaulted
    ones often at their default (so a decoder filling it in may or may not match)."""
    call: dict[str, Any] = {}
    required = params.get("required", [])
    for name, schema in params["properties"].items():
        if "default" in schema and draw(st.booleans()):
            call[name] = copy.deepcopy(schema["default"])
        elif name in required or draw(st.booleans()):
            value = example(draw, schema, defs)
            if value is not ...:
                call[name] = value
    return call


def list_calls(draw: Draw, params: dict[str, Any], defs: dict[str, Any]) -> None:
    """Restrict the params root to a few listed calls (`enum`, or `const` for one)."""
    calls = [call_for(draw, params, defs) for _ in range(draw(st.integers(1, 3)))]
    params.pop("enum", None)
    params.pop("const", None)
    if len(calls) == 1 and draw(st.booleans()):
        params["const"] = calls[0]
    else:
        params["enum"] = calls


# -- mutations ----------------------------------------------------------------------------


def nodes(schema: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every subschema (dicts) in `schema`."""
    if not isinstance(schema, dict):
        return []
    found = [path]
    for keyword in ("items", "additionalProperties", "not", "if", "then", "else"):
        if keyword in schema:
            found.extend(nodes(schema[keyword], (*path, keyword)))
    for keyword in ("properties", "patternProperties"):
        for name, sub in schema.get(keyword, {}).items():
            found.extend(nodes(sub, (*path, keyword, name)))
    for keyword in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for index, sub in enumerate(schema.get(keyword, [])):
            found.extend(nodes(sub, (*path, keyword, index)))
    return found


def at(schema: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        schema = schema[part]
    return schema


def replace_at(root: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    if not path:
        return value  # type: ignore[no-any-return]
    at(root, path[:-1])[path[-1]] = value
    return root


NUMERIC_LIMITS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
LIMITS_FOR = {
    "integer": NUMERIC_LIMITS,
    "number": NUMERIC_LIMITS,
    "string": ("minLength", "maxLength"),
    "array": ("minItems", "maxItems"),
}


def applicable(node: dict[str, Any], path: tuple[Any, ...], *, params: bool) -> list[str]:
    """The mutations that change this subschema (the params root stays an object), each
    repeated by its weight: constraint changes, where checkers go wrong, come first."""
    at_root = params and not path
    types = types_of(node)
    kinds = []
    if not at_root and types and ("integer" in types or "null" not in types):
        kinds += ["widen-type"] * 2
    if not at_root:
        if "number" in types or len(types) > 1:
            kinds += ["narrow-type"] * 2
        kinds += ["change-type", "set-enum", "set-const", "wrap-anyOf", "wrap-oneOf", "add-not"]
        kinds += ["wrap-allOf"]
        kinds += ["limit"] * 5
        if not types or "string" in types:
            kinds += ["format"] * 3 + ["pattern"]
        if not types or "array" in types:
            kinds += ["unique"] * 3
    else:
        kinds += ["list-calls"] * 2
    if "enum" in node and not at_root:
        kinds += ["enum-add"] * 2
        if len(node["enum"]) > 1:
            kinds += ["enum-remove"] * 2
    if [k for k in node if k != "properties" and not (at_root and k == "type")]:
        kinds.append("drop-keyword")
    if "properties" in node or "object" in types:
        kinds += ["add-property"] * 3 + ["additional"] * 2 + ["pattern-properties"] * 2
        if node.get("properties"):
            kinds += ["remove-property"] + ["toggle-required"] * 3
        if len(node.get("properties", {})) > 1:
            kinds += ["dependency", "if-then-required"] * 2
    if "prefixItems" in node:
        kinds += ["tuple-append", "tuple-rest"] * 3
        if len(node["prefixItems"]) > 1:
            kinds += ["tuple-drop"] * 2
    if "allOf" in node:
        kinds += ["allOf-add"] * 3
        if len(node["allOf"]) > 1:
            kinds += ["allOf-remove"] * 3
    if "anyOf" in node:
        kinds.append("anyOf-add")
        if len(node["anyOf"]) > 1:
            kinds.append("anyOf-remove")
    if params and len(path) == 2 and ("default" in node or default_for(node) is not ...):
        kinds += ["default"] * 3
    return kinds


# Keywords whose changes are rare among all the nodes a schema has, and easy to get wrong;
# and the mutations that change them.
STRUCTURE = frozenset(
    {"prefixItems", "allOf", "patternProperties", "dependentRequired", "if", "enum", "const"}
)
STRUCTURE_MUTATIONS = frozenset(
    {
        "tuple-append", "tuple-drop", "tuple-rest", "allOf-add", "allOf-remove",
        "pattern-properties", "dependency", "if-then-required", "list-calls", "enum-add",
        "enum-remove", "limit", "drop-keyword", "default",
    }
)  # fmt: skip


def mutate(
    draw: Draw,
    root: dict[str, Any],
    *,
    params: bool,
    defs: dict[str, Any] | None = None,
    structural: bool = False,
) -> dict[str, Any]:
    # The root a third of the time (it holds the object-level changes), a node with
    # structure (tuples, allOf, ...) a third (always, if `structural`), else any node.
    paths = nodes(root)
    structured = [path for path in paths if STRUCTURE & set(at(root, path))]
    where = 1 if structural and structured else draw(st.integers(0, 2))
    if where == 0:
        path: tuple[Any, ...] = ()
    else:
        path = draw(st.sampled_from(structured if where == 1 and structured else paths))
    node = at(root, path)
    kinds = applicable(node, path, params=params)
    if where == 1:  # each structural change as likely as another
        kinds = sorted(set(kinds) & STRUCTURE_MUTATIONS) or kinds
    if not kinds:
        return root
    kind = draw(st.sampled_from(kinds))
    event(f"mutation {kind}")
    types = types_of(node)
    if kind == "widen-type":
        if "integer" in types:
            types[types.index("integer")] = "number"
        else:
            types.append("null")
        node["type"] = types if len(types) > 1 else types[0]
    elif kind == "narrow-type":
        if "number" in types:
            types[types.index("number")] = "integer"
        else:
            types.pop(draw(st.integers(0, len(types) - 1)))
        node["type"] = types if len(types) > 1 else types[0]
    elif kind == "change-type":
        node["type"] = draw(st.sampled_from(["integer", "number", "string", "boolean", "null"]))
    elif kind == "enum-add":
        node["enum"] = [*node["enum"], draw(st.sampled_from(SCALARS))]
    elif kind == "enum-remove":
        node["enum"].pop(draw(st.integers(0, len(node["enum"]) - 1)))
    elif kind == "set-enum":
        node["enum"] = draw(st.lists(st.sampled_from(SCALARS), min_size=1, max_size=3))
    elif kind == "set-const":
        node["const"] = draw(st.sampled_from(SCALARS))
    elif kind == "limit":
        relevant = [k for t in types for k in LIMITS_FOR.get(t, ())] or list(LIMITS)
        present = [k for k in relevant if k in node]
        # Mostly move a limit the schema has (tighter or looser), else add one.
        keyword = draw(st.sampled_from(present if present and draw(st.booleans()) else relevant))
        if keyword in node and keyword == "multipleOf":
            node[keyword] = draw(st.sampled_from([1, 2, 3, 4, 6, 8, 12]))
        elif keyword in node:
            moved = node[keyword] + draw(st.sampled_from([-2, -1, 1, 2]))
            node[keyword] = max(0, moved) if keyword.endswith(("Length", "Items")) else moved
        else:
            node[keyword] = limit_value(draw, keyword)
    elif kind == "drop-keyword":
        at_root = params and not path
        droppable = [k for k in node if k != "properties" and not (at_root and k == "type")]
        node.pop(draw(st.sampled_from(sorted(droppable))))
    elif kind == "format":
        if "format" in node and draw(st.booleans()):
            del node["format"]
        else:
            node["format"] = draw(st.sampled_from(FORMATS))
    elif kind == "pattern":
        node["pattern"] = draw(st.sampled_from(["^a", "b", "^[a-c]*$"]))
    elif kind == "unique":
        node["uniqueItems"] = not node.get("uniqueItems", False)
    elif kind == "add-property":
        free = [name for name in NAMES if name not in node.get("properties", {})]
        if free:
            name = draw(st.sampled_from(free))
            added = node.setdefault("properties", {})[name] = any_schema(draw, 1)
            if params and not path and default_for(added) is not ... and draw(st.booleans()):
                added["default"] = default_for(added)  # a parameter the decoder fills in
            elif draw(st.booleans()):
                node["required"] = [*node.get("required", []), name]
    elif kind == "remove-property":
        name = draw(st.sampled_from(sorted(node["properties"])))
        del node["properties"][name]
        if name in node.get("required", []):
            node["required"] = [n for n in node["required"] if n != name]
    elif kind == "toggle-required":
        name = draw(st.sampled_from(sorted(node["properties"])))
        required = node.get("required", [])
        node["required"] = (
            [n for n in required if n != name] if name in required else [*required, name]
        )
    elif kind == "additional":
        node["additionalProperties"] = draw(
            st.sampled_from([False, True, {"type": "string"}, {"type": ["string", "null"]}])
        )
    elif kind == "anyOf-add":
        node["anyOf"] = [*node["anyOf"], any_schema(draw, 1)]
    elif kind == "anyOf-remove":
        node["anyOf"].pop(draw(st.integers(0, len(node["anyOf"]) - 1)))
    elif kind in ("wrap-anyOf", "wrap-oneOf"):
        keyword = kind.removeprefix("wrap-")
        branches = [copy.deepcopy(node), any_schema(draw, 1)]
        root = replace_at(root, path, {keyword: draw(st.permutations(branches))})
    elif kind == "add-not":
        node["not"] = scalar_schema(draw)
    elif kind == "default":
        if "default" in node:
            del node["default"]
        else:
            node["default"] = default_for(node)
    elif kind == "list-calls":
        mutate_calls(draw, node, defs or {})
    elif kind == "wrap-allOf":
        root = replace_at(root, path, {"allOf": [copy.deepcopy(node), constraint_for(draw, node)]})
    elif kind == "allOf-add":
        node["allOf"] = [*node["allOf"], constraint_for(draw, node["allOf"][0])]
    elif kind == "allOf-remove":
        node["allOf"].pop(draw(st.integers(0, len(node["allOf"]) - 1)))
    elif kind == "tuple-append":
        node["prefixItems"] = [*node["prefixItems"], any_schema(draw, 0)]
    elif kind == "tuple-drop":
        node["prefixItems"].pop()
    elif kind == "tuple-rest":
        rest = draw(st.sampled_from(["open", "closed", "schema"]))
        node.pop("items", None)
        if rest != "open":
            node["items"] = False if rest == "closed" else scalar_schema(draw)
    elif kind == "pattern-properties":
        if "patternProperties" in node and draw(st.booleans()):
            del node["patternProperties"]
        else:
            node["patternProperties"] = {PATTERN: scalar_schema(draw)}
    elif kind == "dependency":
        first, second = draw(st.permutations(sorted(node["properties"])))[:2]
        if "dependentRequired" in node and draw(st.booleans()):
            del node["dependentRequired"]
        else:
            node["dependentRequired"] = {first: [second]}
    elif kind == "if-then-required":
        first, second = draw(st.permutations(sorted(node["properties"])))[:2]
        if "if" in node and draw(st.booleans()):
            node.pop("if")
            node.pop("then", None)
        else:
            node["if"], node["then"] = {"required": [first]}, {"required": [second]}
    return root


def mutate_calls(draw: Draw, params: dict[str, Any], defs: dict[str, Any]) -> None:
    """Change the calls listed at the params root: one added or removed, or a new list."""
    listed = params.get("enum", [params["const"]] if "const" in params else [])
    change = draw(st.sampled_from(["add", "remove", "relist"] if listed else ["relist"]))
    if change == "relist":
        list_calls(draw, params, defs)
        return
    if change == "add":
        listed = [*listed, call_for(draw, params, defs)]
    else:
        listed = [call for index, call in enumerate(listed) if index != len(listed) - 1]
    params.pop("const", None)
    params["enum"] = listed or [call_for(draw, params, defs)]


@st.composite
def contract_pairs(draw: Draw, *, structural: bool = False) -> tuple[TaskContract, TaskContract]:
    """Two versions of a random contract; `structural`: changed only where tuples,
    allOf, patternProperties, dependencies, conditions or listed calls are."""
    old_params, old_returns = params_schema(draw), any_schema(draw, 2)
    old_defs: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        # A recursive definition, used by a parameter or by the value returned.
        old_defs["T"] = tree_schema(draw)
        if draw(st.booleans()):
            old_params["properties"]["t"] = {"$ref": "#/$defs/T"}
        else:
            old_returns = {"type": "array", "items": {"$ref": "#/$defs/T"}}
    if draw(st.integers(0, 3)) == 0:
        list_calls(draw, old_params, old_defs)
    new_params, new_returns = copy.deepcopy(old_params), copy.deepcopy(old_returns)
    new_defs = copy.deepcopy(old_defs)
    for _ in range(draw(st.sampled_from([1, 1, 1, 1, 2, 3]))):
        target = draw(st.sampled_from(["params", "returns", *new_defs]))
        if target == "params":
            new_params = mutate(draw, new_params, params=True, defs=new_defs, structural=structural)
        elif target == "returns":
            new_returns = mutate(draw, new_returns, params=False, structural=structural)
        else:
            new_defs[target] = mutate(draw, new_defs[target], params=False, structural=structural)
    old = {"params": old_params, "returns": old_returns, "$defs": old_defs}
    new = {"params": new_params, "returns": new_returns, "$defs": new_defs}
    # Now and then a parameter's schema lives in $defs, on one side or both.
    shared = sorted(set(old_params["properties"]) & set(new_params["properties"]))
    if shared and draw(st.booleans()):
        name = draw(st.sampled_from(shared))
        for document in (old, new):
            if draw(st.booleans()):
                document["$defs"]["P"] = document["params"]["properties"][name]
                document["params"]["properties"][name] = {"$ref": "#/$defs/P"}
    for document in (old, new):
        if not document["$defs"]:
            del document["$defs"]
    try:
        return (
            TaskContract({"task": "demo.task", **old}),
            TaskContract({"task": "demo.task", **new}),
        )
    except ContractError:
        assume(False)
        raise  # unreachable


@st.composite
def small_pairs(draw: Draw) -> tuple[TaskContract, TaskContract]:
    """One scalar schema, or an array, tuple, object or conditional of them, and one
    mutation of it, as parameter `x` and as `returns`."""
    shape = draw(st.sampled_from(["scalar", "scalar", "array", "tuple", "object", "if-then"]))
    if shape == "scalar":
        old_leaf = scalar_schema(draw)
    elif shape == "if-then":
        old_leaf = conditional_schema(draw)
    else:
        make = {"array": array_schema, "tuple": tuple_schema, "object": object_schema}[shape]
        old_leaf = make(draw, 0)
    new_leaf = mutate(draw, copy.deepcopy(old_leaf), params=False)
    contracts = [
        {
            "task": "demo.task",
            "params": {
                "type": "object",
                "properties": {"x": leaf},
                "required": ["x"],
                "additionalProperties": False,
            },
            "returns": leaf,
        }
        for leaf in (old_leaf, new_leaf)
    ]
    try:
        return TaskContract(contracts[0]), TaskContract(contracts[1])
    except ContractError:
        assume(False)
        raise  # unreachable


# -- the decoder ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(
        json.loads(schema_json), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@functools.lru_cache(maxsize=2048)
def generator(schema_json: str) -> st.SearchStrategy[Any]:
    return from_schema(json.loads(schema_json), custom_formats=CUSTOM_FORMATS)


DRAFT_7 = "http://json-schema.org/draft-07/schema#"
SUBSCHEMA = ("items", "additionalProperties", "not", "if", "then", "else", "propertyNames")
SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SUBSCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
UNROLL = 3  # levels of a recursive `$ref` kept for drawing; deeper, nothing is drawn


def as_draft_7(schema: Any, defs: dict[str, Any], expanded: int = 0) -> Any:
    """The same schema in the draft hypothesis-jsonschema draws from: `$ref`s inlined
    (a recursive one a few levels deep, then `false`), `prefixItems` as list `items`,
    `dependentRequired`/`dependentSchemas` as `dependencies`."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        target = False if expanded >= UNROLL else as_draft_7(defs[name], defs, expanded + 1)
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return {"allOf": [target, as_draft_7(rest, defs, expanded)]} if rest else target
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SUBSCHEMA:
            out[key] = as_draft_7(value, defs, expanded)
        elif key in SUBSCHEMA_LISTS:
            out[key] = [as_draft_7(item, defs, expanded) for item in value]
        elif key in SUBSCHEMA_MAPS:
            out[key] = {name: as_draft_7(item, defs, expanded) for name, item in value.items()}
        elif key != "$defs":
            out[key] = value
    if "prefixItems" in out:
        # Items past maxItems never exist (and hypothesis-jsonschema fails on an empty
        # list of them): the same schema without them.
        prefix = out.pop("prefixItems")[: out.get("maxItems")]
        rest = out.pop("items", None)
        if prefix:
            out["items"] = prefix
            if rest is not None:
                out["additionalItems"] = rest
    for key in ("dependentRequired", "dependentSchemas"):
        if key in out:
            out.setdefault("dependencies", {}).update(out.pop(key))
    return out


def as_json(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True)


@functools.lru_cache(maxsize=1024)
def decoder(contract: TaskContract, side: str) -> tuple[Draft202012Validator, dict[str, Any]]:
    """The validator of one side, and the top-level defaults it fills in (params)."""
    defaults = {
        name: schema["default"]
        for name, schema in contract.params["properties"].items()
        if side == "params" and isinstance(schema, dict) and "default" in schema
    }
    return validator(as_json(bundle(contract.to_dict(), side))), defaults


def accepted(contract: TaskContract, side: str, document: Any) -> bool:
    """What the decoder does: fill in top-level defaults (params), then validate."""
    check, defaults = decoder(contract, side)
    if defaults and isinstance(document, dict):
        document = {**copy.deepcopy(defaults), **document}
    return bool(check.is_valid(document))


def known_names(schema: Any) -> Any:
    """`schema` with every object's property names drawn from NAMES: a narrower schema
    (so its documents are still documents of `schema`) whose undeclared properties are
    the names a changed schema is likely to declare."""
    if isinstance(schema, list):
        return [known_names(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    narrowed = {
        key: value if key in ("enum", "const", "default") else known_names(value)
        for key, value in schema.items()
    }
    if "properties" in schema or schema.get("type") == "object":
        names = dict.fromkeys([*schema.get("properties", {}), *NAMES, "z", "zz"])
        narrowed.setdefault("propertyNames", {"enum": list(names)})
    return narrowed


def sent(contract: TaskContract, side: str) -> Any:
    """A draft-7 schema for what a producer may send: parameters with a default may be
    omitted (a listed call without them is one of its neighbours)."""
    schema = bundle(contract.to_dict(), side)
    if side == "params":
        schema = dict(schema)
        defaulted = {n for n, s in contract.params["properties"].items() if "default" in s}
        schema["required"] = [n for n in schema.get("required", []) if n not in defaulted]
    narrowed = known_names(schema)
    if not isinstance(narrowed, dict):
        return narrowed
    return {"$schema": DRAFT_7, **as_draft_7(narrowed, narrowed.get("$defs", {}))}


# Values near the limits, steps, formats and names the generator uses: random documents
# rarely sit exactly in the gap between two schemas, their neighbours often do.
INTERESTING: list[Any] = [
    *(None, True, False, 0, 1, 2, 3, 4, 5, 6, 12, -1, -2, -3, 0.5, 1.5, 2.5),
    *("", "a", "b", "ab", "abc", "abcd", "abcde", "A", "ba"),
    "1f0e4c2a-8b7d-4c6a-9e5f-1a2b3c4d5e6f",
    "someone@example.com",
    "2024-05-01T12:00:00Z",
    *([], [0], ["a", "a"], {}),
]
# Values for a property or item that was not there: one of each kind.
ADDED: list[Any] = [None, True, 0, 1.5, "a", [], {}]
MAX_NEIGHBOURS = 250


def neighbours(document: Any) -> Any:
    """Documents one change away: a value replaced, a property removed or added, an item
    replaced, repeated or appended."""
    yield from INTERESTING
    if isinstance(document, dict):
        for key in document:
            yield {k: v for k, v in document.items() if k != key}
            for value in neighbours(document[key]):
                yield {**document, key: value}
        for name in NAMES:
            if name not in document:
                for value in ADDED:
                    yield {**document, name: value}
    elif isinstance(document, list):
        for index, item in enumerate(document):
            for value in neighbours(item):
                yield [*document[:index], value, *document[index + 1 :]]
        if document:
            yield [*document, document[0]]
        for value in ADDED:
            yield [*document, value]


def assert_included(
    sub: TaskContract, sup: TaskContract, side: str, draw: Draw, *, tries: int = 5
) -> None:
    strategy = generator(as_json(sent(sub, side)))
    try:
        empty = strategy.is_empty
    except InvalidArgument:  # hypothesis-jsonschema on e.g. minLength > maxLength
        empty = True
    if empty:
        event(f"{side}: nothing to draw from")
        return
    for _ in range(tries):
        try:
            document = draw(strategy)
        except InvalidArgument:  # a format strategy produced a value its checker refuses
            return
        except (SchemaError, AssertionError):  # hypothesis-jsonschema failing on a schema
            event(f"{side}: hypothesis-jsonschema failed")
            return
        candidates = [document, *itertools.islice(neighbours(document), MAX_NEIGHBOURS)]
        for candidate in candidates:
            if not accepted(sub, side, candidate):
                continue
            assert accepted(sup, side, candidate), (
                f"judged compatible, but {json.dumps(candidate)} is accepted by\n"
                f"{json.dumps(bundle(sub.to_dict(), side))}\nand refused by\n"
                f"{json.dumps(bundle(sup.to_dict(), side))}"
            )
        event(f"{side}: checked a document and its neighbours")


def check_pair(pair: tuple[TaskContract, TaskContract], data: st.DataObject, tries: int) -> None:
    old, new = pair
    note(f"old: {json.dumps(old.to_dict())}")
    note(f"new: {json.dumps(new.to_dict())}")
    for direction in Direction:
        found = compare(old, new, direction)
        for side in ("params", "returns"):
            if any(v.side == side for v in found):
                event(f"{side} {direction.value}: incompatible")
                continue
            event(f"{side} {direction.value}: compatible")
            # BACKWARD: old params ⊆ new params, new returns ⊆ old returns.
            old_is_sub = (side == "params") == (direction is Direction.BACKWARD)
            sub, sup = (old, new) if old_is_sub else (new, old)
            assert_included(sub, sup, side, data.draw, tries=tries)


@FAST
@given(pair=contract_pairs(), data=st.data())
def test_compatible_means_every_document_still_passes(
    pair: tuple[TaskContract, TaskContract], data: st.DataObject
) -> None:
    check_pair(pair, data, tries=2)


@FAST
@given(pair=contract_pairs(structural=True), data=st.data())
def test_compatible_structural_change_keeps_every_value(
    pair: tuple[TaskContract, TaskContract], data: st.DataObject
) -> None:
    check_pair(pair, data, tries=2)


@settings(FAST, max_examples=400)
@given(pair=small_pairs(), data=st.data())
def test_compatible_small_change_keeps_every_value(
    pair: tuple[TaskContract, TaskContract], data: st.DataObject
) -> None:
    check_pair(pair, data, tries=3)


@FAST
@given(pair=contract_pairs())
def test_an_unchanged_contract_is_compatible_in_every_mode(
    pair: tuple[TaskContract, TaskContract],
) -> None:
    for contract in pair:
        again = TaskContract(copy.deepcopy(contract.to_dict()))
        for mode in CompatibilityMode:
            report = check_compatibility(again, [(1, contract), (2, contract)], mode)
            assert report.compatible, report.violations
            assert report.warnings == []


@pytest.mark.parametrize("direction", list(Direction))
def test_the_generator_reaches_both_verdicts(direction: Direction) -> None:
    """Guards the guard: random changes are judged compatible often enough to matter."""
    verdicts: list[bool] = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(pair=contract_pairs())
    def collect(pair: tuple[TaskContract, TaskContract]) -> None:
        verdicts.append(not compare(*pair, direction))

    collect()
    assert sum(verdicts) >= len(verdicts) // 10
    assert not all(verdicts)
