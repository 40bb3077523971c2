"""The registry's HTTP API over real HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry_service import RegistrySettings
from taskschema import TaskContract

from conftest import Registry, start_registry
from helpers import make_contract


def publish(registry: Registry, document: object, name: str | None = None) -> httpx.Response:
    task = name or document["task"]  # type: ignore[index]
    return registry.publisher.post(f"/tasks/{task}/versions", json=document)


def assert_error(response: httpx.Response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["message"]
    return body


# -- publishing ----------------------------------------------------------------


def test_publish_creates_version_1_with_id_and_fingerprint(
    registry: Registry, task_name: str
) -> None:
    document = make_contract(task_name)
    response = publish(registry, document)
    assert response.status_code == 201
    body = response.json()
    assert body["task"] == task_name
    assert body["version"] == 1
    assert body["fingerprint"] == TaskContract(document).fingerprint
    assert isinstance(body["id"], int)
    assert response.headers["location"] == f"/tasks/{task_name}/versions/1"


def test_publishing_an_identical_contract_again_returns_the_existing_version(
    registry: Registry, task_name: str
) -> None:
    document = make_contract(task_name)
    first = publish(registry, document).json()
    # Same contract, different key order and whitespace: same canonical form.
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=4)
    again = registry.publisher.post(
        f"/tasks/{task_name}/versions",
        content=reordered,
        headers={"Content-Type": "application/json"},
    )
    assert again.status_code == 200
    assert again.json() == first
    versions = registry.reader.get(f"/tasks/{task_name}/versions").json()
    assert [v["version"] for v in versions] == [1]


def test_a_changed_contract_becomes_the_next_version(registry: Registry, task_name: str) -> None:
    publish(registry, make_contract(task_name))
    response = publish(registry, make_contract(task_name, description="Now documented."))
    assert response.status_code == 201
    assert response.json()["version"] == 2
    latest = registry.reader.get(f"/tasks/{task_name}/versions/latest").json()
    assert latest["version"] == 2
    assert latest["contract"]["description"] == "Now documented."


def test_identical_documents_share_one_global_schema_id(registry: Registry, task_name: str) -> None:
    document = make_contract(task_name)
    first = publish(registry, document).json()
    publish(registry, make_contract(task_name, description="v2"))
    registry.admin.delete(f"/tasks/{task_name}/versions/1")
    # v1's content again: v1 is deleted, so it is a new version, but the same document id.
    again = publish(registry, document)
    assert again.status_code == 201
    assert again.json()["version"] == 3
    assert again.json()["id"] == first["id"]


def test_contract_for_another_task_is_refused(registry: Registry, task_name: str) -> None:
    response = publish(registry, make_contract("other.task"), name=task_name)
    body = assert_error(response, 422, "task_name_mismatch")
    assert body["violations"] == [
        {"path": "/task", "message": f"expected '{task_name}', found 'other.task'"}
    ]
    assert_not_stored(registry, task_name)


def assert_not_stored(registry: Registry, task_name: str) -> None:
    response = registry.reader.get(f"/tasks/{task_name}", params={"include_deleted": True})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (
            lambda d: d["params"]["properties"]["x"].update(type="strin"),
            "/params/properties/x/type",
            "strin",
        ),
        (lambda d: d.pop("returns"), "", "'returns' is a required property"),
        (lambda d: d.update(colour="blue"), "", "colour"),
        (lambda d: d.update(options={"queue": "q", "retries": 3}), "/options", "retries"),
        (lambda d: d["params"].update(type="array"), "/params/type", "'object' was expected"),
        (
            lambda d: d["params"]["properties"].update(y={"$ref": "https://evil.example/s.json"}),
            "/params/properties/y/$ref",
            "remote reference",
        ),
        (
            lambda d: d["params"]["properties"].update(y={"$ref": "http://evil.example/s.json"}),
            "/params/properties/y/$ref",
            "never fetched",
        ),
        (
            lambda d: d.update(returns={"$ref": "#/$defs/Missing"}),
            "/returns/$ref",
            "does not resolve",
        ),
        (lambda d: d["params"].update(required=["x", "nope"]), "/params/required/1", "nope"),
    ],
)
def test_invalid_contracts_are_refused_with_json_paths_and_nothing_is_stored(
    registry: Registry, task_name: str, change, path: str, fragment: str
) -> None:
    document = make_contract(task_name)
    change(document)
    body = assert_error(publish(registry, document, name=task_name), 422, "contract_invalid")
    assert any(v["path"] == path and fragment in v["message"] for v in body["violations"]), body
    assert_not_stored(registry, task_name)


def test_every_contract_problem_is_reported_not_only_the_first(
    registry: Registry, task_name: str
) -> None:
    document = make_contract(
        task_name,
        properties={"lambda": {"type": "string"}, "y": {"$ref": "https://x.example/a"}},
        required=["lambda", "z"],
    )
    body = assert_error(publish(registry, document), 422, "contract_invalid")
    paths = {v["path"] for v in body["violations"]}
    assert paths == {"/params/properties/lambda", "/params/properties/y/$ref", "/params/required/1"}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"task": "a.b",', "line 1 column"),
        (b'{"task": "a.b", "task": "a.c"}', "duplicate key 'task'"),
        (b'{"x": NaN}', "NaN"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_invalid_json_is_refused_with_400(
    registry: Registry, task_name: str, content: bytes, fragment: str
) -> None:
    response = registry.publisher.post(
        f"/tasks/{task_name}/versions",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    body = assert_error(response, 400, "invalid_json")
    assert fragment in body["message"]


def test_a_body_that_is_not_json_is_refused_with_415(registry: Registry, task_name: str) -> None:
    response = registry.publisher.post(
        f"/tasks/{task_name}/versions", content=b"task=a", headers={"Content-Type": "text/plain"}
    )
    assert_error(response, 415, "unsupported_media_type")


def _oversized(task_name: str) -> bytes:
    filler = "x" * (1024 * 1024)
    return json.dumps(make_contract(task_name, description=filler)).encode()


def test_an_oversized_body_is_refused_with_413(registry: Registry, task_name: str) -> None:
    response = registry.publisher.post(
        f"/tasks/{task_name}/versions",
        content=_oversized(task_name),
        headers={"Content-Type": "application/json"},
    )
    body = assert_error(response, 413, "payload_too_large")
    assert "1048576" in body["message"]
    assert_not_stored(registry, task_name)


def test_an_oversized_chunked_body_is_refused_with_413(registry: Registry, task_name: str) -> None:
    data = _oversized(task_name)

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    response = registry.publisher.post(
        f"/tasks/{task_name}/versions",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")
    assert_not_stored(registry, task_name)


def test_the_body_limit_is_configurable(tmp_path: Path, task_name: str) -> None:
    settings = RegistrySettings(database_url=f"sqlite:///{tmp_path / 'r.db'}", max_body_bytes=100)
    for small in start_registry(settings, "sqlite"):
        response = small.publisher.post(
            f"/tasks/{task_name}/versions", json=make_contract(task_name)
        )
        assert_error(response, 413, "payload_too_large")


# -- reading -------------------------------------------------------------------


def test_list_tasks_filters_by_prefix_and_pages(registry: Registry, task_name: str) -> None:
    namespace = task_name.split(".")[0]
    names = [f"{namespace}.job_{index}" for index in range(5)]
    for name in names:
        publish(registry, make_contract(name))
    first = registry.reader.get("/tasks", params={"prefix": f"{namespace}.", "limit": 2}).json()
    assert first["total"] == 5
    assert [t["task"] for t in first["tasks"]] == names[:2]
    rest = registry.reader.get(
        "/tasks", params={"prefix": f"{namespace}.", "limit": 10, "offset": 2}
    ).json()
    assert [t["task"] for t in rest["tasks"]] == names[2:]
    assert rest["tasks"][0] == {
        "task": names[2],
        "latest_version": 1,
        "versions": [1],
        "description": "A test task.",
    }


def test_prefix_filter_treats_wildcards_literally(registry: Registry, task_name: str) -> None:
    publish(registry, make_contract(task_name))
    page = registry.reader.get("/tasks", params={"prefix": "%"}).json()
    assert page["total"] == 0


@pytest.mark.parametrize(
    ("params", "path"), [({"limit": 0}, "/query/limit"), ({"offset": -1}, "/query/offset")]
)
def test_list_tasks_validates_paging(registry: Registry, params: dict, path: str) -> None:
    body = assert_error(registry.reader.get("/tasks", params=params), 422, "request_invalid")
    assert body["violations"][0]["path"] == path


def test_get_task_and_its_versions(registry: Registry, task_name: str) -> None:
    publish(registry, make_contract(task_name))
    publish(registry, make_contract(task_name, description="Second."))
    summary = registry.reader.get(f"/tasks/{task_name}").json()
    assert summary == {
        "task": task_name,
        "latest_version": 2,
        "versions": [1, 2],
        "description": "Second.",
    }
    versions = registry.reader.get(f"/tasks/{task_name}/versions").json()
    assert [(v["version"], v["deleted"]) for v in versions] == [(1, False), (2, False)]
    assert all(v["created_at"].endswith(("Z", "+00:00")) for v in versions)
    one = registry.reader.get(f"/tasks/{task_name}/versions/1").json()
    assert one["contract"] == make_contract(task_name)
    assert one["fingerprint"] == versions[0]["fingerprint"]


def test_the_contract_keeps_its_parameter_order(registry: Registry, task_name: str) -> None:
    properties = {name: {"type": "integer"} for name in ("zeta", "alpha", "mid")}
    publish(registry, make_contract(task_name, properties=properties))
    contract = registry.reader.get(f"/tasks/{task_name}/versions/latest").json()["contract"]
    assert list(contract["params"]["properties"]) == ["zeta", "alpha", "mid"]


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/tasks/{name}", 404, "task_not_found"),
        ("/tasks/{name}/versions", 404, "task_not_found"),
        ("/tasks/{name}/versions/latest", 404, "task_not_found"),
        ("/tasks/{name}/versions/0", 422, "request_invalid"),
        ("/tasks/{name}/versions/newest", 422, "request_invalid"),
        ("/tasks/not a name/versions", 422, "request_invalid"),
        ("/schemas/999999999", 404, "schema_not_found"),
        ("/no/such/route", 404, "not_found"),
    ],
)
def test_missing_things_answer_structured_errors(
    registry: Registry, task_name: str, path: str, status: int, error: str
) -> None:
    assert_error(registry.reader.get(path.format(name=task_name)), status, error)


def test_unknown_version_of_a_known_task_is_404(registry: Registry, task_name: str) -> None:
    publish(registry, make_contract(task_name))
    assert_error(registry.reader.get(f"/tasks/{task_name}/versions/7"), 404, "version_not_found")


def test_wrong_method_is_405(registry: Registry) -> None:
    assert_error(registry.admin.put("/tasks"), 405, "method_not_allowed")


def test_schema_by_id_is_the_canonical_document_and_cacheable(
    registry: Registry, task_name: str
) -> None:
    document = make_contract(task_name)
    published = publish(registry, document).json()
    response = registry.reader.get(f"/schemas/{published['id']}")
    assert response.status_code == 200
    assert response.content == TaskContract(document).canonical_json()
    assert hashlib.sha256(response.content).hexdigest() == published["fingerprint"]
    etag = response.headers["etag"]
    assert etag == f'"{published["fingerprint"]}"'
    assert "immutable" in response.headers["cache-control"]
    assert "max-age=31536000" in response.headers["cache-control"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = registry.reader.get(
            f"/schemas/{published['id']}", headers={"If-None-Match": header}
        )
        assert cached.status_code == 304
        assert cached.content == b""
        assert cached.headers["etag"] == etag
    stale = registry.reader.get(f"/schemas/{published['id']}", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


# -- deleting ------------------------------------------------------------------


def test_soft_delete_hides_a_version_and_latest_falls_back(
    registry: Registry, task_name: str
) -> None:
    publish(registry, make_contract(task_name))
    publish(registry, make_contract(task_name, description="Second."))
    response = registry.admin.delete(f"/tasks/{task_name}/versions/2")
    assert response.status_code == 200
    assert response.json() == {"task": task_name, "version": 2, "permanent": False}
    assert registry.reader.get(f"/tasks/{task_name}/versions/latest").json()["version"] == 1
    assert [v["version"] for v in registry.reader.get(f"/tasks/{task_name}/versions").json()] == [1]
    listed = registry.reader.get(f"/tasks/{task_name}/versions", params={"include_deleted": True})
    assert [(v["version"], v["deleted"]) for v in listed.json()] == [(1, False), (2, True)]
    assert_error(registry.reader.get(f"/tasks/{task_name}/versions/2"), 404, "version_not_found")
    kept = registry.reader.get(f"/tasks/{task_name}/versions/2", params={"include_deleted": True})
    assert kept.json()["deleted"] is True


def test_a_task_with_every_version_deleted_is_not_listed(
    registry: Registry, task_name: str
) -> None:
    publish(registry, make_contract(task_name))
    registry.admin.delete(f"/tasks/{task_name}/versions/1")
    assert registry.reader.get("/tasks", params={"prefix": task_name}).json()["total"] == 0
    hidden = registry.reader.get("/tasks", params={"prefix": task_name, "include_deleted": True})
    assert hidden.json()["total"] == 1
    assert_error(registry.reader.get(f"/tasks/{task_name}"), 404, "task_not_found")


def test_permanent_delete_needs_a_soft_delete_first(registry: Registry, task_name: str) -> None:
    publish(registry, make_contract(task_name))
    url = f"/tasks/{task_name}/versions/1"
    body = assert_error(
        registry.admin.delete(url, params={"permanent": True}), 409, "version_not_soft_deleted"
    )
    assert "soft-delete" in body["message"]
    assert registry.reader.get(url).status_code == 200


def test_permanent_delete_removes_the_version_and_numbers_are_never_reused(
    registry: Registry, task_name: str
) -> None:
    # The newest schema is deleted, so an id counter that restarts from max(id) + 1
    # (SQLite without AUTOINCREMENT) would hand its id to the next contract.
    published = publish(registry, make_contract(task_name)).json()
    url = f"/tasks/{task_name}/versions/1"
    registry.admin.delete(url)
    gone = registry.admin.delete(url, params={"permanent": True})
    assert gone.json() == {"task": task_name, "version": 1, "permanent": True}
    assert_error(
        registry.reader.get(url, params={"include_deleted": True}), 404, "version_not_found"
    )
    assert_error(registry.reader.get(f"/schemas/{published['id']}"), 404, "schema_not_found")
    assert_error(registry.admin.delete(url, params={"permanent": True}), 404, "version_not_found")
    again = publish(registry, make_contract(task_name, description="Fresh.")).json()
    assert again["version"] == 2
    # Global schema ids are served as immutable for a year: never hand one out twice.
    assert again["id"] != published["id"]
    assert again["id"] > published["id"]
    assert registry.reader.get(f"/schemas/{again['id']}").json()["description"] == "Fresh."


def test_deleting_an_unknown_version_is_404(registry: Registry, task_name: str) -> None:
    assert_error(registry.admin.delete(f"/tasks/{task_name}/versions/1"), 404, "version_not_found")


# -- compatibility config --------------------------------------------------------


@pytest.fixture
def global_mode(registry: Registry) -> Iterator[None]:
    yield
    registry.admin.put("/config", json={"compatibility": "BACKWARD"})


def test_global_config_defaults_to_backward_and_can_be_changed(
    registry: Registry, global_mode: None
) -> None:
    assert registry.reader.get("/config").json() == {"compatibility": "BACKWARD"}
    response = registry.admin.put("/config", json={"compatibility": "FULL_TRANSITIVE"})
    assert response.json() == {"compatibility": "FULL_TRANSITIVE"}
    assert registry.reader.get("/config").json() == {"compatibility": "FULL_TRANSITIVE"}


def test_task_config_overrides_the_global_mode_until_deleted(
    registry: Registry, task_name: str
) -> None:
    url = f"/config/{task_name}"
    assert registry.reader.get(url).json() == {"compatibility": "BACKWARD", "source": "global"}
    assert registry.admin.put(url, json={"compatibility": "NONE"}).status_code == 200
    assert registry.admin.put(url, json={"compatibility": "FORWARD"}).status_code == 200
    assert registry.reader.get(url).json() == {"compatibility": "FORWARD", "source": "task"}
    assert registry.admin.delete(url).json() == {"compatibility": "BACKWARD", "source": "global"}
    assert_error(registry.admin.delete(url), 404, "config_not_found")


def test_an_unknown_mode_is_refused(registry: Registry, task_name: str) -> None:
    response = registry.admin.put(f"/config/{task_name}", json={"compatibility": "SIDEWAYS"})
    body = assert_error(response, 422, "request_invalid")
    assert body["violations"][0]["path"] == "/body/compatibility"


# -- auth ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/tasks/{name}/versions", "contract"),
        ("DELETE", "/tasks/{name}/versions/1", None),
        ("PUT", "/config", {"compatibility": "NONE"}),
        ("PUT", "/config/{name}", {"compatibility": "NONE"}),
        ("DELETE", "/config/{name}", None),
    ],
)
def test_writes_without_a_token_are_401(
    registry: Registry, task_name: str, method: str, path: str, body: object
) -> None:
    payload = make_contract(task_name) if body == "contract" else body
    response = registry.anonymous.request(method, path.format(name=task_name), json=payload)
    assert_error(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == "Bearer"
    bogus = registry.anonymous.request(
        method,
        path.format(name=task_name),
        json=payload,
        headers={"Authorization": "Bearer tsk_nope"},
    )
    assert_error(bogus, 401, "invalid_token")


@pytest.mark.parametrize(
    ("client", "method", "path", "body"),
    [
        ("reader", "POST", "/tasks/{name}/versions", "contract"),
        ("publisher", "DELETE", "/tasks/{name}/versions/1", None),
        ("publisher", "PUT", "/config", {"compatibility": "NONE"}),
        ("reader", "PUT", "/config/{name}", {"compatibility": "NONE"}),
        ("publisher", "PUT", "/config/{name}", {"compatibility": "NONE"}),
        ("publisher", "DELETE", "/config/{name}", None),
    ],
)
def test_writes_with_the_wrong_scope_are_403(
    registry: Registry, task_name: str, client: str, method: str, path: str, body: object
) -> None:
    payload = make_contract(task_name) if body == "contract" else body
    response = getattr(registry, client).request(method, path.format(name=task_name), json=payload)
    body_json = assert_error(response, 403, "insufficient_scope")
    assert "scope" in body_json["message"]


def test_admin_tokens_may_publish(registry: Registry, task_name: str) -> None:
    response = registry.admin.post(f"/tasks/{task_name}/versions", json=make_contract(task_name))
    assert response.status_code == 201


def test_reads_are_open_by_default(registry: Registry, task_name: str) -> None:
    publish(registry, make_contract(task_name))
    assert registry.anonymous.get(f"/tasks/{task_name}/versions/latest").status_code == 200


def test_a_revoked_token_is_refused(registry: Registry, task_name: str) -> None:
    token = registry.store.create_token("short-lived", ["publish"])
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/tasks/{task_name}/versions"
    assert (
        registry.anonymous.post(url, json=make_contract(task_name), headers=headers).status_code
        == 201
    )
    (info,) = [t for t in registry.store.list_tokens() if t.name == "short-lived" and not t.revoked]
    assert registry.store.revoke_token(info.id)
    refused = registry.anonymous.post(url, json=make_contract(task_name), headers=headers)
    assert_error(refused, 401, "invalid_token")


def test_reads_can_require_a_token(tmp_path: Path, task_name: str) -> None:
    settings = RegistrySettings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}", require_auth_for_reads=True
    )
    for closed in start_registry(settings, "sqlite"):
        assert_error(closed.anonymous.get("/tasks"), 401, "missing_token")
        assert closed.reader.get("/tasks").status_code == 200
        assert closed.publisher.get("/tasks").status_code == 200
        assert closed.anonymous.get("/healthz").status_code == 200


# -- operations ----------------------------------------------------------------


def test_healthz_reports_the_database(registry: Registry) -> None:
    assert registry.anonymous.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_openapi_and_docs_are_served(registry: Registry) -> None:
    spec = registry.anonymous.get("/openapi.json").json()
    for path in ("/tasks/{name}/versions", "/schemas/{schema_id}", "/config/{name}", "/healthz"):
        assert path in spec["paths"]
    assert "swagger" in registry.anonymous.get("/docs").text.lower()


def test_the_meta_schema_is_served(registry: Registry) -> None:
    schema = registry.anonymous.get("/task-contract.schema.json").json()
    assert schema["title"] == "taskschema task contract"
