"""Registry references (`/schemas/{id}#/$defs/Name`): bundling, publish, compatibility, CLI."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from taskschema import ContractError, TaskContract
from taskschema._references import (
    Bundle,
    FetchedSchema,
    SchemaAddress,
    _all_refs,
    bundle_references,
    parse_registry_ref,
    registry_refs,
)

from helpers import make_contract

ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
    },
    "required": ["id"],
    "additionalProperties": False,
}
LINE = {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}


def contract_a(task: str = "shop.a", order: Any = None) -> dict[str, Any]:
    return make_contract(
        task,
        properties={"order": {"$ref": "#/$defs/Order"}},
        **{"$defs": {"Order": ORDER if order is None else order, "Line": LINE}},
    )


def referring(task: str, ref: str, **extra: Any) -> dict[str, Any]:
    return make_contract(task, properties={"order": {"$ref": ref}}, **extra)


def fetch_from(schemas: Mapping[int, Mapping[str, Any]], versions: Any = None) -> Any:
    """A fetch callback over in-memory schemas by id (and `(task, version) -> id`)."""
    versions = versions or {}

    def fetch(address: SchemaAddress) -> FetchedSchema | None:
        schema_id = address.schema_id
        if schema_id is None:
            schema_id = versions.get((address.task, address.version))
        document = schemas.get(schema_id) if schema_id is not None else None
        return None if document is None else FetchedSchema(schema_id, document)  # type: ignore[arg-type]

    return fetch


def bundled(document: Mapping[str, Any], schemas: Mapping[int, Any]) -> Bundle:
    return bundle_references(document, fetch_from(schemas))


def refusal(document: Mapping[str, Any], schemas: Mapping[int, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ContractError) as info:
        bundled(document, schemas)
    return [(v.path, v.message) for v in info.value.violations]


# -- parsing -------------------------------------------------------------------------------


def test_parse_accepts_schema_ids_and_version_numbers_only() -> None:
    by_id = parse_registry_ref("/schemas/12#/$defs/Order")
    assert not isinstance(by_id, str)
    assert (by_id.address.path, by_id.definition, by_id.rest) == ("/schemas/12", "Order", "")
    by_version = parse_registry_ref("/tasks/shop.a/versions/3#/$defs/a~1b/properties/x")
    assert not isinstance(by_version, str)
    assert by_version.address.path == "/tasks/shop.a/versions/3"
    assert (by_version.definition, by_version.rest) == ("a/b", "/properties/x")
    latest = parse_registry_ref("/tasks/shop.a/versions/latest#/$defs/Order")
    assert isinstance(latest, str)
    assert "'latest'" in latest
    for wrong in ("/schemas/0#/$defs/A", "/schemas/1", "/schemas/1#/params", "/schemas/x#/$defs/A"):
        assert isinstance(parse_registry_ref(wrong), str), wrong


# -- bundling --------------------------------------------------------------------------------


def test_the_referenced_definition_and_its_nested_definitions_are_copied_and_refs_made_local() -> (
    None
):
    result = bundled(referring("shop.b", "/schemas/1#/$defs/Order"), {1: contract_a()})
    document = result.document
    assert document["params"]["properties"]["order"] == {"$ref": "#/$defs/Order"}
    assert document["$defs"] == {"Order": ORDER, "Line": LINE}
    assert [r.model_dump() for r in result.references] == [
        {"ref": "/schemas/1#/$defs/Order", "schema_id": 1, "bundled_as": "#/$defs/Order"}
    ]
    contract = TaskContract(document)
    assert contract.params_violations({"order": {"id": 1, "lines": [{"sku": "x"}]}}) == []
    assert [v.path for v in contract.params_violations({"order": {"id": 1, "lines": [{}]}})] == [
        "/order/lines/0"
    ]


def test_a_version_reference_resolves_to_its_schema_id() -> None:
    fetch = fetch_from({7: contract_a()}, {("shop.a", 2): 7})
    result = bundle_references(referring("shop.b", "/tasks/shop.a/versions/2#/$defs/Order"), fetch)
    assert result.references[0].schema_id == 7
    assert result.document["$defs"]["Order"] == ORDER


def test_name_collisions_get_a_deterministic_suffix_and_identical_definitions_are_shared() -> None:
    own_line = {"type": "string"}
    document = referring("shop.b", "/schemas/1#/$defs/Order", **{"$defs": {"Line": own_line}})
    defs = bundled(document, {1: contract_a()}).document["$defs"]
    assert defs["Line"] == own_line
    assert defs["Line_s1"] == LINE
    assert defs["Order"]["properties"]["lines"]["items"] == {"$ref": "#/$defs/Line_s1"}
    # The same definition already held verbatim is not copied twice.
    same = referring("shop.b", "/schemas/1#/$defs/Order", **{"$defs": {"Line": LINE}})
    assert bundled(same, {1: contract_a()}).document["$defs"] == {"Order": ORDER, "Line": LINE}
    # Two schemas' Orders: the first keeps the name, the second is suffixed by its id.
    narrowed = {**ORDER, "required": ["id", "lines"]}
    two = make_contract(
        "shop.b",
        properties={
            "a": {"$ref": "/schemas/1#/$defs/Order"},
            "b": {"$ref": "/schemas/2#/$defs/Order"},
        },
    )
    result = bundled(two, {1: contract_a(), 2: contract_a(order=narrowed)})
    assert result.document["params"]["properties"]["b"] == {"$ref": "#/$defs/Order_s2"}
    assert result.document["$defs"]["Order_s2"] == {
        **narrowed,
        "properties": {
            "id": {"type": "integer"},
            "lines": {"type": "array", "items": {"$ref": "#/$defs/Line_s2"}},
        },
    }
    # A suffixed name that is taken too gets a counter.
    crowded = referring(
        "shop.b", "/schemas/1#/$defs/Order", **{"$defs": {"Order": {}, "Order_s1": {}}}
    )
    assert "Order_s1_2" in bundled(crowded, {1: contract_a()}).document["$defs"]


def test_recursive_definitions_terminate() -> None:
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
    }
    forest = {"type": "array", "items": {"$ref": "#/$defs/Tree"}}
    source = make_contract("shop.a", **{"$defs": {"Tree": tree, "Forest": forest}})
    own = {"Tree": {"type": "string"}}  # forces renaming inside the cycle
    document = referring("shop.b", "/schemas/1#/$defs/Forest", **{"$defs": own})
    defs = bundled(document, {1: source}).document["$defs"]
    assert defs["Forest"] == {"type": "array", "items": {"$ref": "#/$defs/Tree_s1"}}
    assert defs["Tree_s1"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Tree_s1"}
    contract = TaskContract(bundled(document, {1: source}).document)
    assert contract.params_violations({"order": [{"children": [{"children": []}]}]}) == []
    assert contract.params_violations({"order": [{"children": [1]}]}) != []


def test_unresolvable_references_are_refused_at_their_paths() -> None:
    document = make_contract(
        "shop.b",
        properties={
            "a": {"$ref": "/schemas/99#/$defs/Order"},
            "b": {"type": "array", "items": {"$ref": "/schemas/1#/$defs/Missing"}},
            "c": {"$ref": "/tasks/shop.a/versions/latest#/$defs/Order"},
            "d": {"$ref": "/schemas/1#/$defs/Order"},
        },
    )
    problems = refusal(document, {1: contract_a()})
    assert [path for path, _ in problems] == [
        "/params/properties/a/$ref",
        "/params/properties/b/items/$ref",
        "/params/properties/c/$ref",
    ]
    assert "no schema with id 99" in problems[0][1]
    assert (
        "schema 1 has no definition at #/$defs/Missing (its $defs: Line, Order)" in problems[1][1]
    )
    assert "'latest'" in problems[2][1]


def test_documents_without_registry_refs_are_untouched_and_loading_one_unbundled_is_refused() -> (
    None
):
    plain = contract_a()
    assert bundled(plain, {}).document == plain
    assert bundled(plain, {}).references == ()
    with pytest.raises(ContractError) as info:
        TaskContract(referring("shop.b", "/schemas/1#/$defs/Order"))
    (violation,) = info.value.violations
    assert violation.path == "/params/properties/order/$ref"
    assert "is not bundled" in violation.message


def test_key_order_does_not_change_the_bundle() -> None:
    document = make_contract(
        "shop.b",
        properties={
            "a": {"$ref": "/schemas/1#/$defs/Order"},
            "b": {"$ref": "/schemas/2#/$defs/Order"},
        },
    )
    reordered = json.loads(json.dumps(document, sort_keys=True))
    reordered["params"]["properties"] = document["params"]["properties"]  # positional order
    reordered = dict(reversed(list(reordered.items())))
    schemas = {1: contract_a(), 2: contract_a(order={"type": "object"})}
    first = TaskContract(bundled(document, schemas).document)
    second = TaskContract(bundled(reordered, schemas).document)
    assert first.fingerprint == second.fingerprint


# -- the property: bundling preserves meaning, leaves only local refs, and is idempotent ----

NAMES = ["A", "B", "Order"]


def _schema(refs: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    leaf = st.sampled_from([{"type": "integer"}, {"type": "string"}, {"type": "null"}])
    member = st.one_of(leaf, refs.map(lambda ref: {"$ref": ref}))
    properties = st.dictionaries(st.sampled_from(["p", "q"]), member, min_size=1, max_size=2)
    return st.one_of(member, properties.map(lambda p: {"type": "object", "properties": p}))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], dict[int, Any]]:
    """A source contract (schema 1) whose definitions refer to each other, and a contract
    referring to them, with definitions of its own that may collide or be identical."""
    local = [f"#/$defs/{name}" for name in NAMES]
    source_defs = {name: draw(_schema(st.sampled_from(local))) for name in NAMES}
    source = make_contract("src.task", **{"$defs": source_defs})
    own_names = draw(st.lists(st.sampled_from([*NAMES, "Order_s1", "C"]), unique=True, max_size=3))
    refs = [f"/schemas/1#/$defs/{name}" for name in NAMES]
    refs += [f"#/$defs/{name}" for name in own_names]
    own_defs = {
        name: source_defs[name]  # verbatim: may be shared instead of copied
        if name in source_defs and draw(st.booleans())
        else draw(_schema(st.sampled_from(refs)))
        for name in own_names
    }
    properties = draw(
        st.dictionaries(
            st.sampled_from(["x", "y", "z"]), _schema(st.sampled_from(refs)), min_size=1
        )
    )
    document = make_contract("dst.task", properties=properties, **{"$defs": own_defs})
    # Valid apart from its registry references: every local one names its own definition.
    assume(
        all(
            value.removeprefix("#/$defs/") in own_defs
            for _path, value in _refs(document)
            if value.startswith("#")
        )
    )
    return document, {1: source}


def _refs(document: Any) -> list[tuple[str, str]]:
    return [(path, value) for path, value in _all_refs(document)]  # type: ignore[misc]


def _unfold(schema: Any, defs: Mapping[str, Any], sources: Mapping[int, Any], depth: int) -> Any:
    """A schema with `$ref`s replaced by their targets, `depth` levels deep: what it means,
    whatever the definitions are called."""
    if depth == 0:
        return "..."
    if isinstance(schema, list):
        return [_unfold(item, defs, sources, depth) for item in schema]
    if not isinstance(schema, dict):
        return schema
    unfolded = {k: _unfold(v, defs, sources, depth) for k, v in schema.items() if k != "$ref"}
    if "$ref" in schema:
        ref: str = schema["$ref"]
        target_defs = defs
        if ref.startswith("/schemas/"):
            target_defs = sources[int(ref.split("/")[2].split("#")[0])]["$defs"]
        name = ref.split("#/$defs/")[1]
        unfolded["$ref"] = _unfold(target_defs[name], target_defs, sources, depth - 1)
    return unfolded


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_bundling_preserves_meaning_leaves_only_local_refs_and_is_idempotent(
    scenario: tuple[dict[str, Any], dict[int, Any]],
) -> None:
    document, sources = scenario
    result = bundled(document, sources)
    assert registry_refs(result.document) == []
    contract = TaskContract(result.document)  # every local ref resolves
    assert _unfold(contract.params, contract.defs, sources, 6) == _unfold(
        document["params"], document["$defs"], sources, 6
    )
    assert bundled(result.document, sources).document == result.document
    again = TaskContract(bundled(document, sources).document)
    assert again.fingerprint == contract.fingerprint
