"""The HTTP task gateway over real HTTP, real brokers and a real prefork worker.

One registry per broker (RabbitMQ and Redis) publishes through the gateway to a worker
running the validating decoder with contracts of its own: demo.greet there is stricter
than the version in the registry (times <= 3 instead of <= 5), so the gateway accepts
calls the worker refuses, and the refusal must come back through `GET /results`.
Messages sent to an "idle" queue nobody consumes are read back raw to check what the
gateway put on the wire, and that refused calls put nothing there.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from celery.utils.saferepr import saferepr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from kombu import Exchange, Queue
from kombu.message import Message
from workers import (
    REDIS_BROKER_URL,
    RESULT_BACKEND_URL,
    RESULT_TIMEOUT,
    DeadLetters,
    Setup,
    Worker,
    require_services,
    running_worker,
    unique,
)

from registry_service import RegistrySettings
from registry_service._gateway import CallRefused, check_call, kwargs_repr
from registry_service._gateway_models import SendRequest
from taskschema import CompatibilityMode, StaticContracts, TaskContract
from taskschema.kombu import MessageDecoder, Rejection, TaskCall

from conftest import Registry, start_registry
from helpers import free_port, make_contract

CONTRACTS = Path(__file__).resolve().parent / "contracts"
GREET = json.loads((CONTRACTS / "demo.greet.json").read_text())
ADA = {"name": "Ada", "born": "1990-01-01T00:00:00Z"}
ADA_AGE_DAYS = (datetime(2026, 1, 1, tzinfo=UTC) - datetime(1990, 1, 1, tzinfo=UTC)).days
WORKER_MAX_TIMES = 3  # the worker's demo.greet; the registry's allows 5
READY_STATES = {"SUCCESS", "FAILURE", "REVOKED"}
live_registry = contextmanager(start_registry)


def greeting(text: str = "Hello, Ada!", times: int = 1) -> dict[str, Any]:
    return {"text": text, "age_days": ADA_AGE_DAYS, "times": times}


def contract(name: str, queue: str) -> dict[str, Any]:
    """A demo contract as the registry holds it: sent to `queue` by default."""
    document = json.loads((CONTRACTS / f"{name}.json").read_text())
    document["options"] = {**document.get("options", {}), "queue": queue}
    return document


def client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=15)


def task_name(prefix: str) -> str:
    """A task name no other test uses (each segment an identifier)."""
    return f"{prefix}.t{uuid.uuid4().hex[:10]}"


def wait_for_result(http: httpx.Client, task_id: str) -> dict[str, Any]:
    """Poll `GET /results/{task_id}` until the task is done."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while True:
        response = http.get(f"/results/{task_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["task_id"] == task_id
        if body["state"] in READY_STATES:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"{task_id} still {body['state']} after {RESULT_TIMEOUT}s")
        time.sleep(0.05)


# -- fixtures ----------------------------------------------------------------------


class IdleQueue:
    """A queue no worker consumes, declared as Celery declares a queue it routes to."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        # Named after the setup's queue, so Setup.delete removes its Redis keys too.
        self.name = f"{setup.queue}.idle"
        self.queue = Queue(self.name, Exchange(self.name, "direct"), self.name, durable=True)

    def declare(self) -> None:
        with self.setup.connection() as conn:
            self.queue(conn.default_channel).declare()

    def count(self) -> int:
        with self.setup.connection() as conn:
            declared = self.queue(conn.default_channel).queue_declare(passive=True)
            return int(declared.message_count)

    def take(self) -> Message:
        """The oldest message, acknowledged (so removed)."""
        with self.setup.connection() as conn:
            deadline = time.monotonic() + RESULT_TIMEOUT
            while (message := self.queue(conn.default_channel).get(no_ack=False)) is None:
                assert time.monotonic() < deadline, f"nothing arrived on {self.name}"
                time.sleep(0.05)
            message.ack()
            return message

    def purge(self) -> None:
        with self.setup.connection() as conn:
            self.queue(conn.default_channel).purge()

    def delete(self) -> None:
        if self.setup.broker == "amqp":
            with self.setup.connection() as conn:
                conn.default_channel.queue_delete(self.name)
                conn.default_channel.exchange_delete(self.name)


@pytest.fixture(scope="module")
def idle(setup: Setup) -> Iterator[IdleQueue]:
    queue = IdleQueue(setup)
    queue.declare()
    queue.purge()
    yield queue
    queue.delete()


@pytest.fixture(scope="module")
def worker(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A prefork worker whose demo.greet contract is stricter than the registry's."""
    contracts = tmp_path_factory.mktemp("worker-contracts")
    for path in CONTRACTS.glob("*.json"):
        shutil.copy(path, contracts / path.name)
    strict = json.loads((CONTRACTS / "demo.greet.json").read_text())
    strict["params"]["properties"]["times"]["maximum"] = WORKER_MAX_TIMES
    (contracts / "demo.greet.json").write_text(json.dumps(strict))
    env = {
        "TEST_CONTRACTS": str(contracts),
        "TEST_MARKER_DIR": str(tmp_path_factory.mktemp("markers")),
    }
    logs = tmp_path_factory.mktemp("gateway-worker-logs")
    with running_worker(setup, logs, env, name="gateway") as running:
        yield running


@pytest.fixture(scope="module")
def registry(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry whose gateway publishes to `setup`'s broker, with the demo contracts."""
    database = tmp_path_factory.mktemp("gateway-registry") / "registry.db"
    settings = RegistrySettings(
        database_url=f"sqlite:///{database}",
        broker_url=setup.broker_url,
        result_backend=RESULT_BACKEND_URL,
    )
    with live_registry(settings, "sqlite") as live:
        for name in ("demo.greet", "demo.sleep", "demo.broken_return"):
            response = live.publisher.post(
                f"/tasks/{name}/versions", json=contract(name, setup.queue)
            )
            assert response.status_code == 201, response.text
        yield live


@pytest.fixture(scope="module")
def sender(registry: Registry) -> Iterator[httpx.Client]:
    """A client holding a token with only the `send` scope."""
    with client(registry.url, registry.store.create_token("test-send", ["send"])) as http:
        yield http


def send(http: httpx.Client, task: str, body: dict[str, Any], **params: Any) -> httpx.Response:
    return http.post(f"/tasks/{task}/send", json=body, params=params)


# -- valid calls, end to end -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"args": [ADA, 2, True]}, greeting("HELLO, ADA!HELLO, ADA!", times=2)),
        ({"kwargs": {"person": ADA, "times": 3, "shout": False}}, greeting("Hello, Ada!" * 3, 3)),
        ({"args": [ADA], "kwargs": {"times": 2}}, greeting("Hello, Ada!" * 2, times=2)),
        ({"kwargs": {"person": ADA}}, greeting()),
        ({"args": [{**ADA, "email": None}], "kwargs": {"shout": True}}, greeting("HELLO, ADA!")),
    ],
    ids=["positional", "keyword", "mixed", "defaults-omitted", "optional-null"],
)
def test_valid_call_runs_on_the_worker_and_its_result_reads_back(
    worker: Worker, sender: httpx.Client, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = send(sender, "demo.greet", body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["task"] == "demo.greet"
    assert accepted["version"] == 1
    assert response.headers["location"] == f"/results/{accepted['task_id']}"
    result = wait_for_result(sender, accepted["task_id"])
    assert result["state"] == "SUCCESS", (result, worker.read_log()[-3000:])
    assert result["result"] == expected  # the worker ran it typed, returned plain JSON
    assert "error" not in result
    assert result["date_done"]


def test_a_call_the_worker_contract_refuses_fails_with_every_violation(
    setup: Setup, worker: Worker, sender: httpx.Client
) -> None:
    # Valid under the registry's contract (times <= 5), not under the worker's (<= 3).
    response = send(sender, "demo.greet", {"kwargs": {"person": ADA, "times": 4}})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    result = wait_for_result(sender, task_id)
    assert result["state"] == "FAILURE"
    assert "result" not in result
    error = result["error"]
    assert error["error"] == "contract-violation"
    assert error["task"] == "demo.greet"
    assert error["message"] == "arguments of demo.greet break its contract"
    assert error["violations"] == [
        {"path": "/times", "message": f"4 is greater than the maximum of {WORKER_MAX_TIMES}"}
    ]
    letter = DeadLetters(setup).wait_for(task_id)  # the worker kept the refused message
    assert letter.headers["x-taskschema-reason"] == "contract-violation"


def test_a_wrong_return_value_fails_with_the_structured_error(
    worker: Worker, sender: httpx.Client
) -> None:
    response = send(sender, "demo.broken_return", {"args": [3]})
    assert response.status_code == 202, response.text
    result = wait_for_result(sender, response.json()["task_id"])
    assert result["state"] == "FAILURE"
    assert result["error"]["error"] == "return-violation"
    assert [v["path"] for v in result["error"]["violations"]] == ["/total"]


def test_a_task_that_raises_fails_with_its_exception_type_and_message(
    worker: Worker, sender: httpx.Client
) -> None:
    # demo.sleep writes a marker file; one in a missing directory makes it raise.
    response = send(sender, "demo.sleep", {"kwargs": {"seconds": 0, "marker": "missing/x"}})
    assert response.status_code == 202, response.text
    result = wait_for_result(sender, response.json()["task_id"])
    assert result["state"] == "FAILURE"
    assert result["error"]["exc_type"] == "FileNotFoundError"
    # Celery keeps an exception's args, which for OSError hold no file name.
    assert result["error"]["message"] == "[Errno 2] No such file or directory"
    assert set(result["error"]) == {"exc_type", "message"}


def test_an_unknown_task_id_is_pending(registry: Registry) -> None:
    response = registry.anonymous.get(f"/results/{unique('never-sent')}")
    assert response.status_code == 200
    assert response.json()["state"] == "PENDING"
    assert set(response.json()) == {"task_id", "state"}
    assert response.headers["cache-control"] == "no-store"


def test_a_malformed_task_id_is_refused(registry: Registry) -> None:
    response = registry.anonymous.get("/results/not%20an%20id")
    assert response.status_code == 422
    assert response.json()["error"] == "request_invalid"


# -- what goes on the wire ---------------------------------------------------------


def test_the_message_is_the_one_celery_sends(
    setup: Setup, idle: IdleQueue, sender: httpx.Client
) -> None:
    response = send(
        sender,
        "demo.greet",
        {"args": [ADA], "kwargs": {"times": 2}, "options": {"queue": idle.name}},
    )
    assert response.status_code == 202, response.text
    ours = idle.take()
    celery = setup.client()
    try:
        reference_id = celery.send_task(
            "demo.greet", kwargs={"person": ADA, "times": 2}, queue=idle.name
        ).id
    finally:
        celery.close()
    theirs = idle.take()
    assert ours.headers["id"] == response.json()["task_id"]
    assert theirs.headers["id"] == reference_id
    # Keyword arguments only, and the default of `shout` left for the worker to fill.
    assert json.loads(ours.body) == [
        [],
        {"person": ADA, "times": 2},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]
    assert ours.body == theirs.body
    assert (ours.content_type, ours.content_encoding) == ("application/json", "utf-8")
    assert (theirs.content_type, theirs.content_encoding) == (ours.content_type, "utf-8")
    per_message = {"id", "root_id"}
    assert {k: v for k, v in ours.headers.items() if k not in per_message} == {
        k: v for k, v in theirs.headers.items() if k not in per_message
    }
    assert ours.headers["task"] == "demo.greet"
    assert ours.headers["root_id"] == ours.headers["id"]
    assert ours.properties["correlation_id"] == ours.headers["id"]


def test_contract_options_apply_and_request_options_override(
    setup: Setup, idle: IdleQueue, registry: Registry, sender: httpx.Client
) -> None:
    name = task_name("gw.options")
    document = make_contract(
        name,
        properties={"n": {"type": "integer"}},
        options={
            "queue": idle.name,
            "priority": 3,
            "time_limit": 30,
            "soft_time_limit": 20,
            "expires": 600,
            "acks_late": True,
        },
    )
    assert registry.publisher.post(f"/tasks/{name}/versions", json=document).status_code == 201

    assert send(sender, name, {"args": [1]}).status_code == 202
    defaults = idle.take()
    assert defaults.headers["timelimit"] == [30, 20]
    assert defaults.headers["expires"] is not None
    assert defaults.headers["eta"] is None
    assert defaults.properties["priority"] == 3

    task_id = unique("mine")
    overrides = {"priority": 7, "time_limit": 60, "countdown": 30, "task_id": task_id}
    response = send(sender, name, {"args": [2], "options": overrides})
    assert response.status_code == 202, response.text
    assert response.json()["task_id"] == task_id
    overridden = idle.take()
    assert overridden.headers["id"] == task_id
    assert overridden.headers["timelimit"] == [60, 20]
    assert overridden.headers["eta"] is not None
    assert overridden.properties["priority"] == 7


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"countdown": 5, "eta": "2030-01-01T00:00:00Z"}, "/body/options"),
        ({"eta": "2030-01-01T00:00:00"}, "/body/options/eta"),  # no UTC offset
        ({"priority": 256}, "/body/options/priority"),
        ({"expires": -1}, "/body/options/expires"),
        ({"task_id": "has a space"}, "/body/options/task_id"),
        ({"exchange": "amq.topic"}, "/body/options/exchange"),  # not an option
        ({"soft_time_limit": 90}, "/body/options/soft_time_limit"),  # >= the contract's time limit
        ({"countdown": 1e12}, "/body/options"),  # past year 9999: Celery cannot build it
    ],
    ids=[
        "countdown-and-eta",
        "naive-eta",
        "priority",
        "expires",
        "task-id",
        "unknown",
        "limits",
        "countdown-out-of-range",
    ],
)
def test_invalid_options_are_refused(
    registry: Registry, sender: httpx.Client, options: dict[str, Any], path: str
) -> None:
    name = task_name("gw.limits")
    document = make_contract(name, options={"time_limit": 60})
    assert registry.publisher.post(f"/tasks/{name}/versions", json=document).status_code == 201
    response = send(sender, name, {"args": [1], "options": options})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "request_invalid"
    assert [v["path"] for v in body["violations"]] == [path]


# -- refused calls publish nothing ---------------------------------------------------


MARKED_BORN = {"__type__": "datetime", "__value__": "1990-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"kwargs": {"person": {"name": "", "born": "yesterday"}, "times": "3"}},
         ["/person/born", "/person/name", "/times"]),
        ({"kwargs": {"times": 2}}, [""]),
        ({}, [""]),
        ({"kwargs": {"person": ADA, "colour": "red"}}, [""]),
        ({"args": [ADA, 1, True, "extra"]}, [""]),
        ({"args": [ADA], "kwargs": {"person": ADA}}, ["/person"]),
        ({"args": [{"name": "Ada", "born": MARKED_BORN}]}, ["/person/born"]),
        ({"kwargs": {"person": ADA, "times": 6}}, ["/times"]),
    ],
    ids=["wrong-types", "missing-required", "empty", "unknown-parameter", "surplus-positional",
         "given-twice", "type-marker", "over-the-registry-maximum"],
)  # fmt: skip
def test_a_call_that_breaks_the_contract_is_refused_and_not_published(
    idle: IdleQueue, sender: httpx.Client, body: dict[str, Any], paths: list[str]
) -> None:
    idle.purge()
    on_idle = {"options": {"queue": idle.name}}
    assert send(sender, "demo.greet", {"args": [ADA], **on_idle}).status_code == 202
    assert idle.count() == 1  # a send to this queue is seen, so a refused one would be too
    response = send(sender, "demo.greet", {**body, **on_idle})
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "contract_violation"
    assert sorted(v["path"] for v in error["violations"]) == paths
    assert all(v["message"] for v in error["violations"])
    assert idle.count() == 1
    idle.purge()


def test_concurrent_sends_are_each_published_once_and_refused_ones_never(
    worker: Worker, idle: IdleQueue, registry: Registry, sender: httpx.Client
) -> None:
    """Sends made together are published in shared batches, to several queues at once; one
    that Celery cannot build is refused alone."""
    idle.purge()
    token = sender.headers["Authorization"]
    to_idle = {"args": [ADA], "options": {"queue": idle.name}}
    to_worker = {"args": [ADA], "kwargs": {"times": 2}}  # the contract's queue: the worker's
    refused = {"args": [ADA], "kwargs": {"times": "2"}, "options": {"queue": idle.name}}
    unbuildable = {"args": [ADA], "options": {"queue": idle.name, "countdown": 1e12}}
    bodies = [to_idle] * 40 + [to_worker] * 8 + [refused] * 7 + [unbuildable]
    bodies = bodies[::2] + bodies[1::2]  # interleaved

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=registry.url, headers={"Authorization": token}, timeout=30
        ) as http:
            return await asyncio.gather(
                *(http.post("/tasks/demo.greet/send", json=body) for body in bodies)
            )

    responses = asyncio.run(send_all())
    accepted = [r.json() for r in responses if r.status_code == 202]
    assert [r.status_code for r in responses] == [
        422 if body in (refused, unbuildable) else 202 for body in bodies
    ]
    assert len({a["task_id"] for a in accepted}) == len(accepted)  # one id each
    assert idle.count() == 40  # one message per accepted send, none for refused ones
    on_idle = {idle.take().headers["id"] for _ in range(40)}
    by_body = zip(responses, bodies, strict=True)
    assert on_idle == {r.json()["task_id"] for r, body in by_body if body is to_idle}
    for response, body in zip(responses, bodies, strict=True):
        if body is to_worker:
            result = wait_for_result(sender, response.json()["task_id"])
            assert result["state"] == "SUCCESS", result


def test_a_call_is_validated_against_the_requested_version(
    idle: IdleQueue, registry: Registry, sender: httpx.Client
) -> None:
    name = task_name("gw.versions")
    v1 = make_contract(name, properties={"n": {"type": "integer", "maximum": 10}})
    v2 = make_contract(name, properties={"n": {"type": "integer", "maximum": 100}})
    for document in (v1, v2):
        document["options"] = {"queue": idle.name}
        assert registry.publisher.post(f"/tasks/{name}/versions", json=document).status_code == 201
    idle.purge()
    latest = send(sender, name, {"args": [50]})
    assert latest.status_code == 202, latest.text
    assert latest.json()["version"] == 2
    pinned = send(sender, name, {"args": [50]}, version=1)
    assert pinned.status_code == 422
    assert [v["path"] for v in pinned.json()["violations"]] == ["/n"]
    assert idle.count() == 1
    idle.purge()


@pytest.mark.parametrize(
    ("task", "params", "code"),
    [("demo.unknown", {}, "task_not_found"), ("demo.greet", {"version": 9}, "version_not_found")],
)
def test_an_unknown_task_or_version_is_404(
    sender: httpx.Client, task: str, params: dict[str, Any], code: str
) -> None:
    response = send(sender, task, {"args": [ADA]}, **params)
    assert response.status_code == 404
    assert response.json()["error"] == code


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"args": [NaN]}', "application/json", 400, "invalid_json"),
        (b'{"args": [], "args": [1]}', "application/json", 400, "invalid_json"),
        (b'{"args": [', "application/json", 400, "invalid_json"),
        (b'{"args": []}', "text/plain", 415, "unsupported_media_type"),
        (b"[]", "application/json", 422, "request_invalid"),
        (b'{"kwarg": {}}', "application/json", 422, "request_invalid"),
    ],
    ids=["nan", "duplicate-key", "truncated", "not-json", "not-an-object", "unknown-field"],
)
def test_a_body_that_is_not_a_strict_json_call_is_refused(
    sender: httpx.Client, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = sender.post(
        "/tasks/demo.greet/send", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


# -- auth ----------------------------------------------------------------------------


def test_sending_needs_a_token_with_the_send_scope(worker: Worker, registry: Registry) -> None:
    body = {"kwargs": {"person": ADA}}
    missing = send(registry.anonymous, "demo.greet", body)
    assert missing.status_code == 401
    assert missing.json()["error"] == "missing_token"
    assert missing.headers["www-authenticate"] == "Bearer"
    with client(registry.url, "tsk_not-a-token") as stranger:
        assert send(stranger, "demo.greet", body).json()["error"] == "invalid_token"
    for holder in (registry.reader, registry.publisher):
        refused = send(holder, "demo.greet", body)
        assert refused.status_code == 403
        assert refused.json()["error"] == "insufficient_scope"
        assert "'send' scope" in refused.json()["message"]
    # admin holds every scope, as it does for publishing.
    accepted = send(registry.admin, "demo.greet", body)
    assert accepted.status_code == 202, accepted.text
    assert wait_for_result(registry.anonymous, accepted.json()["task_id"])["state"] == "SUCCESS"


def test_results_follow_the_read_rule(tmp_path: Path) -> None:
    require_services("redis")
    settings = RegistrySettings(
        database_url=f"sqlite:///{tmp_path / 'r.db'}",
        result_backend=RESULT_BACKEND_URL,
        require_auth_for_reads=True,
    )
    with live_registry(settings, "sqlite") as live:
        task_id = unique("read-rule")
        assert live.anonymous.get(f"/results/{task_id}").status_code == 401
        assert live.reader.get(f"/results/{task_id}").json()["state"] == "PENDING"


# -- no broker, broker down --------------------------------------------------------


@contextmanager
def registry_with(tmp_path: Path, **settings: Any) -> Iterator[Registry]:
    """A registry of the test's own with `settings`, demo.greet published."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with live_registry(RegistrySettings(database_url=url, **settings), "sqlite") as live:
        response = live.publisher.post("/tasks/demo.greet/versions", json=GREET)
        assert response.status_code == 201, response.text
        yield live


def test_without_broker_or_backend_the_gateway_answers_503(tmp_path: Path) -> None:
    with registry_with(tmp_path) as live:
        with client(live.url, live.store.create_token("s", ["send"])) as http:
            response = send(http, "demo.greet", {"args": [ADA]})
            assert response.status_code == 503
            assert response.json()["error"] == "broker_not_configured"
            assert "--broker-url" in response.json()["message"]
        response = live.anonymous.get(f"/results/{unique('x')}")
        assert response.status_code == 503
        assert response.json()["error"] == "result_backend_not_configured"


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_an_unreachable_broker_or_backend_answers_503(tmp_path: Path, scheme: str) -> None:
    port = free_port()
    url = (
        f"redis://127.0.0.1:{port}/0"
        if scheme == "redis"
        else f"amqp://u:secret@127.0.0.1:{port}//"
    )
    backend = f"redis://127.0.0.1:{port}/1"
    with registry_with(tmp_path, broker_url=url, result_backend=backend) as live:
        # The client's own timeout (15 s) bounds the test: a gateway that hung would fail it.
        with client(live.url, live.store.create_token("s", ["send"])) as http:
            response = send(http, "demo.greet", {"args": [ADA]})
            assert response.status_code == 503, response.text
            error = response.json()
            assert error["error"] == "broker_unavailable"
            assert f"127.0.0.1:{port}" in error["message"]
            assert "secret" not in error["message"]  # the password is masked
            assert "nothing was published" in error["message"]
            # The contract is checked before the broker is tried.
            assert send(http, "demo.greet", {}).status_code == 422
        response = live.anonymous.get(f"/results/{unique('x')}")
        assert response.status_code == 503
        assert response.json()["error"] == "result_backend_unavailable"


def test_an_rpc_result_backend_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="read by task id"):
        RegistrySettings(result_backend="rpc://")


# -- docs and curl -------------------------------------------------------------------


def test_the_gateway_is_described_in_openapi(registry: Registry) -> None:
    spec = registry.anonymous.get("/openapi.json").json()
    send_op = spec["paths"]["/tasks/{name}/send"]["post"]
    # The body schema is inline and self-contained: no reference into components.
    body = send_op["requestBody"]["content"]["application/json"]["schema"]
    assert body["title"] == "SendRequest"
    assert "$ref" not in json.dumps(body)
    assert set(body["properties"]) == {"args", "kwargs", "options"}
    options = body["properties"]["options"]["properties"]
    assert {"queue", "priority", "countdown", "eta", "expires", "task_id"} <= set(options)
    assert send_op["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/TaskAccepted"
    )
    assert "location" in {header.lower() for header in send_op["responses"]["202"]["headers"]}
    assert {"400", "401", "403", "404", "415", "422", "503"} <= set(send_op["responses"])
    assert "200" not in send_op["responses"]
    assert {(p["name"], p["in"], p["required"]) for p in send_op["parameters"]} == {
        ("name", "path", True),
        ("version", "query", False),
    }
    assert send_op["security"] == [{"HTTPBearer": []}]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert "`send` scope" in send_op["description"]
    results_op = spec["paths"]["/results/{task_id}"]["get"]
    assert results_op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/TaskResult"
    )


def test_the_documented_body_schema_agrees_with_the_route(
    registry: Registry, sender: httpx.Client
) -> None:
    """Calls the OpenAPI body schema refuses are refused by the route, and the other way."""
    spec = registry.anonymous.get("/openapi.json").json()
    schema = spec["paths"]["/tasks/{name}/send"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    documented = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    unknown = {"name": task_name("gw.unknown")}  # so an accepted shape ends in 404, unsent
    shapes: list[Any] = [
        {"args": [1], "kwargs": {"a": 1}, "options": {"queue": "q", "countdown": 1}},
        {"options": {"priority": 256}},
        {"options": {"expires": "2030-01-01T00:00:00Z"}},
        {"options": {"exchange": "x"}},
        {"args": {}},
        {"kwargs": []},
        {"extra": 1},
        [],
    ]
    for shape in shapes:
        response = sender.post(f"/tasks/{unknown['name']}/send", json=shape)
        if documented.is_valid(shape):
            assert response.status_code == 404, (shape, response.text)
        else:
            assert response.status_code == 422, (shape, response.text)
            assert response.json()["error"] == "request_invalid"


@pytest.mark.parametrize(
    ("path", "params", "where"),
    [
        ("/tasks/not-a-name/send", {}, ["/path/name"]),
        ("/tasks/demo.greet/send", {"version": 0}, ["/query/version"]),
        ("/tasks/demo.greet/send", {"version": "latest"}, ["/query/version"]),
        ("/tasks/-/send", {"version": "x"}, ["/path/name", "/query/version"]),
    ],
    ids=["bad-name", "version-zero", "version-not-a-number", "both"],
)
def test_a_bad_task_name_or_version_is_refused_with_where(
    sender: httpx.Client, path: str, params: dict[str, Any], where: list[str]
) -> None:
    response = sender.post(path, json={"args": [ADA]}, params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "request_invalid"
    assert [v["path"] for v in body["violations"]] == where


CURL_CALL = '{"args": [{"name": "Ada", "born": "1990-01-01T00:00:00Z"}], "kwargs": {"times": 2}}'


def test_curl_sends_and_reads_the_result(worker: Worker, registry: Registry) -> None:
    """curl, the process, against the gateway: a send, then its result read back. (The
    README's own curl examples are run by test_readme.py against the example service.)"""
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    token = registry.store.create_token("curl", ["send"])
    sent = subprocess.run(
        [curl, "-s", "-X", "POST", f"{registry.url}/tasks/demo.greet/send",
         "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
         "-d", CURL_CALL],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    task_id = json.loads(sent.stdout)["task_id"]
    deadline = time.monotonic() + RESULT_TIMEOUT
    while True:
        read = subprocess.run(
            [curl, "-s", f"{registry.url}/results/{task_id}"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        result = json.loads(read.stdout)
        if result["state"] == "SUCCESS" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert result["result"] == greeting("Hello, Ada!" * 2, times=2)


# -- the gateway agrees with the worker's decoder ----------------------------------------

GREET_CONTRACT = TaskContract(GREET)
DECODER = MessageDecoder(StaticContracts([GREET_CONTRACT]))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
people = st.fixed_dictionaries(
    {"name": st.sampled_from(["Ada", ""]), "born": st.sampled_from([ADA["born"], "soon"])},
    optional={"email": st.sampled_from([None, "ada@example.com", "nope", MARKED_BORN])},
)
arguments = st.one_of(people, st.integers(-1, 7), st.booleans(), st.just(MARKED_BORN), json_values)


def _message(args: list[Any], kwargs: dict[str, Any]) -> Message:
    return Message(
        body=json.dumps([args, kwargs, {}]).encode(),
        content_type="application/json",
        content_encoding="utf-8",
        headers={"task": "demo.greet", "id": "0d4b3f3e-1c2a-4e5f-9a8b-7c6d5e4f3a2b"},
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    args=st.lists(arguments, max_size=4),
    kwargs=st.dictionaries(st.sampled_from(["person", "times", "shout", "extra"]), arguments),
)
def test_the_gateway_accepts_exactly_the_calls_the_worker_accepts(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    worker_verdict = DECODER.decode(_message(args, kwargs))
    try:
        params = check_call(GREET_CONTRACT, SendRequest(args=args, kwargs=kwargs))
    except CallRefused as exc:
        refused: CallRefused | None = exc
    else:
        refused = None
    if refused is not None:
        assert isinstance(worker_verdict, Rejection), worker_verdict
        if worker_verdict.reason in ("contract-violation", "signature"):
            ours = sorted(v.path for v in refused.violations)
            assert ours == sorted(v.path for v in worker_verdict.violations)
        return
    assert isinstance(worker_verdict, TaskCall), worker_verdict
    # What the gateway publishes (keyword arguments, defaults left out) passes too.
    assert isinstance(DECODER.decode(_message([], params)), TaskCall)
    assert set(params) == set(kwargs) | set(GREET_CONTRACT.parameters[: len(args)])


any_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
        st.sampled_from(["it's", "a'b\\'c", "x" * 300, "line\nbreak", "é 🎉"]),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(
    kwargs=st.dictionaries(st.text(max_size=8), any_json, max_size=5),
    maxsize=st.sampled_from([8, 40, 200, 1024]),
    maxlevels=st.sampled_from([0, 1, 2, 3, 5]),
)
def test_the_kwargsrepr_header_is_celerys_saferepr(
    kwargs: dict[str, Any], maxsize: int, maxlevels: int
) -> None:
    assert kwargs_repr(kwargs, maxsize, maxlevels) == saferepr(kwargs, maxsize, maxlevels=maxlevels)


def test_revocations_and_new_versions_reach_sends_within_the_cache_time(tmp_path: Path) -> None:
    require_services("redis")
    cache = 0.3
    with registry_with(tmp_path, broker_url=REDIS_BROKER_URL, gateway_cache_seconds=cache) as live:
        token_id_before = {t.id for t in live.store.list_tokens()}
        token = live.store.create_token("short-lived", ["send"])
        (token_id,) = {t.id for t in live.store.list_tokens()} - token_id_before
        queue = unique("taskschema.test.cache")
        call = {"args": [ADA], "kwargs": {"times": 5}, "options": {"queue": queue}}
        with client(live.url, token) as http:
            assert send(http, "demo.greet", call).status_code == 202
            stricter = json.loads(json.dumps(GREET))
            stricter["params"]["properties"]["times"]["maximum"] = 4
            live.store.set_config("demo.greet", CompatibilityMode.NONE)
            assert (
                live.publisher.post("/tasks/demo.greet/versions", json=stricter).status_code == 201
            )
            live.store.revoke_token(token_id)
            time.sleep(cache * 2)
            refused = send(http, "demo.greet", call)
            assert refused.status_code == 401, refused.text
        with client(live.url, live.store.create_token("fresh", ["send"])) as http:
            newer = send(http, "demo.greet", call)
            assert newer.status_code == 422, newer.text  # validated against version 2
            assert [v["path"] for v in newer.json()["violations"]] == ["/times"]
        redis.Redis.from_url(REDIS_BROKER_URL).delete(queue)
