"""Registry references (`/schemas/{id}#/$defs/Name`): bundling, publish, compatibility, CLI."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_cli import run, token_of, write

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

from conftest import Registry
from helpers import make_contract as _make_contract

ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
    },
    "required": ["id"],
    "additionalProperties": False,
}
LINE: dict[str, Any] = {
    "type": "object",
    "properties": {"sku": {"type": "string"}},
    "required": ["sku"],
}


def make_contract(task: str, *, defs: Any = None, **fields: Any) -> dict[str, Any]:
    """helpers.make_contract, with `$defs`."""
    document = _make_contract(task, **fields)
    if defs is not None:
        document["$defs"] = defs
    return document


def contract_a(task: str = "shop.a", order: Any = None) -> dict[str, Any]:
    return make_contract(
        task,
        properties={"order": {"$ref": "#/$defs/Order"}},
        defs={"Order": ORDER if order is None else order, "Line": LINE},
    )


def referring(task: str, ref: str, defs: Any = None) -> dict[str, Any]:
    return make_contract(task, properties={"order": {"$ref": ref}}, defs=defs)


def fetch_from(schemas: Mapping[int, Mapping[str, Any]], versions: Any = None) -> Any:
    """A fetch callback over in-memory schemas by id (and `(task, version) -> id`)."""
    versions = versions or {}

    def fetch(address: SchemaAddress) -> FetchedSchema | None:
        schema_id = address.schema_id
        if schema_id is None:
            schema_id = versions.get((address.task, address.version))
        document = schemas.get(schema_id) if schema_id is not None else None
        return None if document is None else FetchedSchema(schema_id, document)

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
    document = referring("shop.b", "/schemas/1#/$defs/Order", defs={"Line": own_line})
    defs = bundled(document, {1: contract_a()}).document["$defs"]
    assert defs["Line"] == own_line
    assert defs["Line_s1"] == LINE
    assert defs["Order"]["properties"]["lines"]["items"] == {"$ref": "#/$defs/Line_s1"}
    # The same definition already held verbatim is not copied twice.
    same = referring("shop.b", "/schemas/1#/$defs/Order", defs={"Line": LINE})
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
    crowded = referring("shop.b", "/schemas/1#/$defs/Order", defs={"Order": {}, "Order_s1": {}})
    assert "Order_s1_2" in bundled(crowded, {1: contract_a()}).document["$defs"]


def test_recursive_definitions_terminate() -> None:
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
    }
    forest = {"type": "array", "items": {"$ref": "#/$defs/Tree"}}
    source = make_contract("shop.a", defs={"Tree": tree, "Forest": forest})
    own = {"Tree": {"type": "string"}}  # forces renaming inside the cycle
    document = referring("shop.b", "/schemas/1#/$defs/Forest", defs=own)
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
    source = make_contract("src.task", defs=source_defs)
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
    document = make_contract("dst.task", properties=properties, defs=own_defs)
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


# -- through the registry (real HTTP, SQLite and PostgreSQL) -------------------------------


def publish(registry: Registry, document: Mapping[str, Any]) -> httpx.Response:
    return registry.publisher.post(f"/tasks/{document['task']}/versions", json=document)


def publish_a(registry: Registry, task: str, order: Any = None) -> int:
    response = publish(registry, contract_a(task, order))
    assert response.status_code in (200, 201), response.text
    schema_id: int = response.json()["id"]
    return schema_id


def test_a_contract_referring_to_another_is_stored_bundled_with_its_references(
    registry: Registry, task_name: str
) -> None:
    a_id = publish_a(registry, task_name + "_a")
    b = referring(task_name, f"/schemas/{a_id}#/$defs/Order")
    created = publish(registry, b)
    assert created.status_code == 201, created.text
    detail = registry.reader.get(f"/tasks/{task_name}/versions/1").json()
    assert detail["contract"]["params"]["properties"]["order"] == {"$ref": "#/$defs/Order"}
    assert detail["contract"]["$defs"] == {"Order": ORDER, "Line": LINE}
    assert detail["references"] == [
        {"ref": f"/schemas/{a_id}#/$defs/Order", "schema_id": a_id, "bundled_as": "#/$defs/Order"}
    ]
    stored = registry.reader.get(f"/schemas/{created.json()['id']}").json()
    assert stored == detail["contract"]
    # Publishing the same document again, or the bundled one, is the same version.
    for again in (b, stored):
        response = publish(registry, again)
        assert (response.status_code, response.json()["version"]) == (200, 1)
    # A worker validates with the stored contract alone: no registry reference left.
    worker_side = TaskContract(stored)
    assert worker_side.params_violations({"order": {"id": 1, "lines": [{"sku": "a"}]}}) == []
    problems = worker_side.params_violations({"order": {"id": "1", "lines": [{}]}})
    assert sorted(v.path for v in problems) == ["/order/id", "/order/lines/0"]


def test_a_version_reference_nested_definitions_and_collisions(
    registry: Registry, task_name: str
) -> None:
    a_task = task_name + "_a"
    a_id = publish_a(registry, a_task)
    own_line = {"type": "string", "minLength": 1}
    b = make_contract(
        task_name,
        properties={
            "order": {"$ref": f"/tasks/{a_task}/versions/1#/$defs/Order"},
            "line": {"$ref": "#/$defs/Line"},
        },
        defs={"Line": own_line},
    )
    assert publish(registry, b).status_code == 201
    detail = registry.reader.get(f"/tasks/{task_name}/versions/latest").json()
    defs = detail["contract"]["$defs"]
    assert defs["Line"] == own_line
    assert defs[f"Line_s{a_id}"] == LINE
    assert defs["Order"]["properties"]["lines"]["items"] == {"$ref": f"#/$defs/Line_s{a_id}"}
    assert [(r["ref"], r["schema_id"]) for r in detail["references"]] == [
        (f"/tasks/{a_task}/versions/1#/$defs/Order", a_id)
    ]


def test_unresolvable_references_are_refused_with_422_at_their_paths_and_nothing_stored(
    registry: Registry, task_name: str
) -> None:
    a_id = publish_a(registry, task_name + "_a")
    document = make_contract(
        task_name,
        properties={
            "a": {"$ref": "/schemas/999999999#/$defs/Order"},
            "b": {"$ref": f"/schemas/{a_id}#/$defs/Nope"},
            "c": {"$ref": f"/tasks/{task_name}_a/versions/latest#/$defs/Order"},
            "d": {"$ref": f"/tasks/{task_name}_a/versions/9#/$defs/Order"},
        },
    )
    for response in (
        publish(registry, document),
        registry.reader.post(f"/tasks/{task_name}/compatibility", json=document),
    ):
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "contract_invalid"
        assert [v["path"] for v in body["violations"]] == [
            f"/params/properties/{name}/$ref" for name in "abcd"
        ]
        assert "no schema with id 999999999" in body["violations"][0]["message"]
    assert registry.reader.get(f"/tasks/{task_name}").status_code == 404


def test_a_change_in_the_referenced_definition_is_checked_like_any_other(
    registry: Registry, task_name: str
) -> None:
    a_task = task_name + "_a"
    v1_id = publish_a(registry, a_task)
    registry.admin.put(f"/config/{a_task}", json={"compatibility": "NONE"})
    narrowed = {
        **ORDER,
        "properties": {**ORDER["properties"], "id": {"type": "integer", "maximum": 10}},
    }
    v2_id = publish_a(registry, a_task, order=narrowed)
    assert v2_id != v1_id
    assert (
        publish(registry, referring(task_name, f"/schemas/{v1_id}#/$defs/Order")).status_code == 201
    )
    b2 = referring(task_name, f"/schemas/{v2_id}#/$defs/Order")
    report = registry.reader.post(f"/tasks/{task_name}/compatibility", json=b2).json()
    assert report["compatible"] is False
    assert [(v["path"], v["rule"], v["direction"]) for v in report["violations"]] == [
        ("/$defs/Order/properties/id/maximum", "limit-added", "backward")
    ]
    refused = publish(registry, b2)
    assert refused.status_code == 409
    assert refused.json()["violations"][0]["path"] == "/$defs/Order/properties/id/maximum"
    # Widening through a newer schema is fine.
    widened = {**ORDER, "required": []}
    v3_id = publish_a(registry, a_task, order=widened)
    assert (
        publish(registry, referring(task_name, f"/schemas/{v3_id}#/$defs/Order")).status_code == 201
    )


def test_a_schema_bundled_from_outlives_the_permanent_delete_of_its_version(
    registry: Registry, task_name: str
) -> None:
    a_task = task_name + "_a"
    a_id = publish_a(registry, a_task)
    assert (
        publish(registry, referring(task_name, f"/schemas/{a_id}#/$defs/Order")).status_code == 201
    )
    registry.admin.delete(f"/tasks/{a_task}/versions/1")
    assert (
        registry.admin.delete(f"/tasks/{a_task}/versions/1", params={"permanent": True}).status_code
        == 200
    )
    # The provenance stays readable; the version itself is gone.
    assert registry.reader.get(f"/schemas/{a_id}").status_code == 200
    assert registry.reader.get(f"/tasks/{a_task}/versions/1").status_code == 404
    # Deleting the referring version for good releases both.
    registry.admin.delete(f"/tasks/{task_name}/versions/1")
    b_id = registry.reader.get(
        f"/tasks/{task_name}/versions/1", params={"include_deleted": True}
    ).json()["id"]
    registry.admin.delete(f"/tasks/{task_name}/versions/1", params={"permanent": True})
    assert registry.reader.get(f"/schemas/{b_id}").status_code == 404


# -- the CLI ------------------------------------------------------------------------------


def test_cli_offline_check_needs_resolve_for_registry_references(
    sqlite_registry: Registry, tmp_path: Path, task_name: str
) -> None:
    a_task = task_name + "_a"
    v1_id = publish_a(sqlite_registry, a_task)
    sqlite_registry.admin.put(f"/config/{a_task}", json={"compatibility": "NONE"})
    narrowed = {**ORDER, "required": ["id", "lines"]}
    v2_id = publish_a(sqlite_registry, a_task, order=narrowed)
    old = write(tmp_path / "old.json", referring(task_name, f"/schemas/{v1_id}#/$defs/Order"))
    new = write(tmp_path / "new.json", referring(task_name, f"/schemas/{v2_id}#/$defs/Order"))
    offline = run("check", str(old), str(new))
    assert offline.returncode == 2
    assert (
        f"error: {old}:/params/properties/order/$ref: registry reference "
        f"'/schemas/{v1_id}#/$defs/Order' cannot be resolved offline: give --resolve URL"
    ) in offline.stderr
    assert f"{new}:/params/properties/order/$ref" in offline.stderr
    resolved = run("check", str(old), str(new), "--resolve", sqlite_registry.url)
    assert resolved.returncode == 1, resolved.stdout + resolved.stderr
    assert f"{new}: incompatible (BACKWARD)" in resolved.stdout
    assert f"{new}:/$defs/Order/required/1: property-made-required" in resolved.stdout
    same = run("check", str(old), str(old), "--resolve", sqlite_registry.url)
    assert same.returncode == 0, same.stdout + same.stderr
    unknown = write(
        tmp_path / "unknown.json", referring(task_name, "/schemas/999999999#/$defs/Order")
    )
    missing = run("check", str(old), str(unknown), "--resolve", sqlite_registry.url)
    assert missing.returncode == 2
    assert f"{unknown}:/params/properties/order/$ref: registry reference" in missing.stderr
    assert "no schema with id 999999999" in missing.stderr


def test_cli_publish_and_registry_check_let_the_registry_bundle(
    sqlite_registry: Registry, tmp_path: Path, task_name: str
) -> None:
    a_id = publish_a(sqlite_registry, task_name + "_a")
    file = write(tmp_path / "b.json", referring(task_name, f"/schemas/{a_id}#/$defs/Order"))
    token = token_of(sqlite_registry.publisher)
    published = run("publish", str(file), "--registry", sqlite_registry.url, "--token", token)
    assert published.returncode == 0, published.stdout + published.stderr
    assert f"{task_name}: created v1" in published.stdout
    checked = run("check", str(file), "--registry", sqlite_registry.url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{file}: compatible (BACKWARD)" in checked.stdout
    bad = write(tmp_path / "bad.json", referring(task_name, f"/schemas/{a_id}#/$defs/Nope"))
    refused = run("check", str(bad), "--registry", sqlite_registry.url)
    assert refused.returncode == 2
    assert f"{bad}:/params/properties/order/$ref: registry reference" in refused.stderr
    not_published = run("publish", str(bad), "--registry", sqlite_registry.url, "--token", token)
    assert not_published.returncode == 1
    assert f"{bad}: refused (contract_invalid)" in not_published.stdout
    assert f"{bad}:/params/properties/order/$ref" in not_published.stdout


def test_cli_check_with_no_contract_files_exits_2(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    result = run("check", str(tmp_path), "--registry", sqlite_registry.url)
    assert result.returncode == 2
    assert f"no contract files (*.json) found in {tmp_path}" in result.stderr
