"""Compatibility enforcement through the registry API, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import Registry
from helpers import make_contract


def publish(registry: Registry, document: dict[str, Any]) -> httpx.Response:
    return registry.publisher.post(f"/tasks/{document['task']}/versions", json=document)


def with_x(task: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return make_contract(task, properties={"x": schema}, **extra)


def set_mode(registry: Registry, task: str, mode: str) -> None:
    response = registry.admin.put(f"/config/{task}", json={"compatibility": mode})
    assert response.status_code == 200


def live_versions(registry: Registry, task: str) -> list[int]:
    return [v["version"] for v in registry.reader.get(f"/tasks/{task}/versions").json()]


def test_a_breaking_change_is_refused_with_409_every_violation_and_nothing_stored(
    registry: Registry, task_name: str
) -> None:
    assert publish(registry, with_x(task_name, {"type": "integer"})).status_code == 201
    breaking = make_contract(
        task_name,
        properties={"x": {"type": "integer", "maximum": 10}, "y": {"type": "string"}},
        returns={"type": "string"},
    )
    response = publish(registry, breaking)
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "incompatible"
    assert "BACKWARD" in body["message"]
    found = {
        (v["side"], v["path"], v["rule"], v["direction"], v["version"]) for v in body["violations"]
    }
    assert found == {
        ("params", "/params/properties/x/maximum", "limit-added", "backward", 1),
        ("params", "/params/required/1", "property-made-required", "backward", 1),
        ("returns", "/returns/type", "type-changed", "backward", 1),
    }
    assert all(v["message"] for v in body["violations"])
    assert live_versions(registry, task_name) == [1]


def test_a_compatible_change_is_published(registry: Registry, task_name: str) -> None:
    publish(registry, with_x(task_name, {"type": "integer", "maximum": 10}))
    widened = with_x(task_name, {"type": ["integer", "null"]})
    assert publish(registry, widened).status_code == 201
    assert live_versions(registry, task_name) == [1, 2]


def test_mode_none_accepts_anything_and_forward_refuses_what_backward_allows(
    registry: Registry, task_name: str
) -> None:
    publish(registry, with_x(task_name, {"type": "integer"}))
    set_mode(registry, task_name, "NONE")
    assert publish(registry, with_x(task_name, {"type": "string"})).status_code == 201
    set_mode(registry, task_name, "FORWARD")
    widened = with_x(task_name, {"type": ["string", "null"]})  # backward-safe only
    response = publish(registry, widened)
    assert response.status_code == 409
    (violation,) = response.json()["violations"]
    assert (violation["direction"], violation["rule"]) == ("forward", "type-widened")


def test_the_global_mode_applies_to_tasks_without_their_own(
    registry: Registry, task_name: str
) -> None:
    publish(registry, with_x(task_name, {"type": "integer"}))
    registry.admin.put("/config", json={"compatibility": "NONE"})
    try:
        assert publish(registry, with_x(task_name, {"type": "string"})).status_code == 201
    finally:
        registry.admin.put("/config", json={"compatibility": "BACKWARD"})
    assert publish(registry, with_x(task_name, {"type": "boolean"})).status_code == 409


def test_transitive_modes_compare_with_every_live_version(
    registry: Registry, task_name: str
) -> None:
    publish(registry, with_x(task_name, {"type": "string"}))
    set_mode(registry, task_name, "NONE")
    publish(registry, with_x(task_name, {"type": "integer"}))  # v2 broke v1 on purpose
    v3 = with_x(task_name, {"type": "integer"}, description="v3")
    set_mode(registry, task_name, "BACKWARD_TRANSITIVE")
    response = publish(registry, v3)
    assert response.status_code == 409
    assert {v["version"] for v in response.json()["violations"]} == {1}
    set_mode(registry, task_name, "BACKWARD")
    check = registry.reader.post(f"/tasks/{task_name}/compatibility", json=v3).json()
    assert check["compatible"] is True
    # Deleted versions no longer bind transitive checks.
    registry.admin.delete(f"/tasks/{task_name}/versions/1")
    set_mode(registry, task_name, "FULL_TRANSITIVE")
    assert publish(registry, v3).status_code == 201


def test_compatibility_endpoint_reports_without_storing(registry: Registry, task_name: str) -> None:
    publish(registry, with_x(task_name, {"type": "integer", "default": 0}, required=[]))
    candidate = with_x(task_name, {"type": "integer", "default": 1, "minimum": 0}, required=[])
    response = registry.reader.post(f"/tasks/{task_name}/compatibility", json=candidate)
    assert response.status_code == 200
    report = response.json()
    assert report["compatible"] is False
    assert report["mode"] == "BACKWARD"
    assert [(v["path"], v["rule"]) for v in report["violations"]] == [
        ("/params/properties/x/minimum", "limit-added")
    ]
    assert [(w["path"], w["rule"]) for w in report["warnings"]] == [
        ("/params/properties/x/default", "default-changed")
    ]
    assert live_versions(registry, task_name) == [1]
    relaxed = registry.reader.post(
        f"/tasks/{task_name}/compatibility", params={"mode": "FORWARD"}, json=candidate
    ).json()
    assert relaxed["compatible"] is True
    assert relaxed["mode"] == "FORWARD"


def test_compatibility_with_one_chosen_version(registry: Registry, task_name: str) -> None:
    publish(registry, with_x(task_name, {"type": "string"}))
    set_mode(registry, task_name, "NONE")
    publish(registry, with_x(task_name, {"type": "integer"}))
    candidate = with_x(task_name, {"type": "integer"}, description="again")
    url = f"/tasks/{task_name}/compatibility"
    against_1 = registry.reader.post(url, params={"version": 1, "mode": "BACKWARD"}, json=candidate)
    assert against_1.json()["compatible"] is False
    against_2 = registry.reader.post(url, params={"version": 2, "mode": "BACKWARD"}, json=candidate)
    assert against_2.json()["compatible"] is True
    missing = registry.reader.post(url, params={"version": 9}, json=candidate)
    assert missing.status_code == 404
    assert missing.json()["error"] == "version_not_found"


def test_the_first_version_is_always_compatible(registry: Registry, task_name: str) -> None:
    report = registry.reader.post(
        f"/tasks/{task_name}/compatibility", json=with_x(task_name, {"type": "integer"})
    ).json()
    assert report == {"compatible": True, "mode": "BACKWARD", "violations": [], "warnings": []}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"task": "other.task"}, 422, "task_name_mismatch"),
        (
            {"params": {"type": "object", "properties": {"x": {"type": "nope"}}}},
            422,
            "contract_invalid",
        ),
    ],
)
def test_compatibility_endpoint_validates_its_input(
    registry: Registry, task_name: str, body: dict[str, Any], status: int, error: str
) -> None:
    document = {**with_x(task_name, {"type": "integer"}), **body}
    response = registry.reader.post(f"/tasks/{task_name}/compatibility", json=document)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_republishing_an_existing_version_is_not_checked_again(
    registry: Registry, task_name: str
) -> None:
    v1 = with_x(task_name, {"type": "string"})
    publish(registry, v1)
    set_mode(registry, task_name, "NONE")
    publish(registry, with_x(task_name, {"type": "integer"}))
    set_mode(registry, task_name, "BACKWARD")
    again = publish(registry, with_x(task_name, {"type": "integer"}))
    assert (again.status_code, again.json()["version"]) == (200, 2)
