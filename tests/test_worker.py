"""Real prefork workers (concurrency 2) on real RabbitMQ and Redis, contracts enforced.

One worker per broker serves the valid calls and the whole malformed-message matrix; a
refused message must never crash or wedge it, so after each case a valid call is sent
and its result read. Workers of their own cover redelivery after a SIGKILL (acks_late),
a registry that is down (contracts from the disk cache) and `unknown_tasks="reject"`.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from celery.result import AsyncResult
from worker_app import Greeting, Person
from workers import (
    RESULT_TIMEOUT,
    DeadLetter,
    DeadLetters,
    Setup,
    Worker,
    publish_raw,
    publish_without_content_type,
    require_services,
    running_worker,
    unique,
)

from registry_service import RegistrySettings
from taskschema import CallValidationError, TaskContract, TypedTask
from taskschema._exceptions import ContractViolation
from taskschema.celery import CONTRACT_RETRY_DELAY

from conftest import start_registry

CONTRACTS = Path(__file__).resolve().parent / "contracts"
ADA = {"name": "Ada", "born": "1990-01-01T00:00:00Z"}
ADA_AGE_DAYS = (datetime(2026, 1, 1, tzinfo=UTC) - datetime(1990, 1, 1, tzinfo=UTC)).days
# The matrix worker refuses bodies over this (install's max_body_bytes, default 4 MiB).
CONFIGURED_MAX_BODY = 64 * 1024


def greeting(text: str = "Hello, Ada!", times: int = 1) -> dict[str, Any]:
    return {"text": text, "age_days": ADA_AGE_DAYS, "times": times}


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-logs")


@pytest.fixture(scope="module")
def worker(setup: Setup, logs: Path) -> Iterator[Worker]:
    """The worker the valid calls and the malformed matrix share (unknown tasks allowed)."""
    with running_worker(
        setup, logs, {"TEST_MAX_BODY_BYTES": str(CONFIGURED_MAX_BODY)}, name="matrix"
    ) as running:
        yield running


def task_id() -> str:
    return str(uuid.uuid4())


def failure_of(client: Celery, id_: str) -> ContractViolation:
    """The FAILURE result of `id_`, checked to be plain JSON in the backend too."""
    result = AsyncResult(id_, app=client)
    value = result.get(timeout=RESULT_TIMEOUT, propagate=False)
    assert result.state == "FAILURE", (result.state, value)
    assert isinstance(value, ContractViolation), repr(value)
    raw = client.backend.get(client.backend.get_key_for_task(id_))
    stored = json.loads(raw)  # plain JSON: no pickle, no __type__ markers
    assert stored["status"] == "FAILURE"
    assert stored["result"]["exc_type"] == "ContractViolation"
    (error,) = stored["result"]["exc_message"]
    assert error == value.error
    assert set(error) == {"error", "message", "task", "violations"}
    assert all(set(v) == {"path", "message"} for v in error["violations"])
    assert [v.path for v in value.violations] == [v["path"] for v in error["violations"]]
    return value


def assert_keeps_consuming(worker: Worker, client: Celery) -> None:
    """The worker is alive and still runs valid calls."""
    assert worker.alive, worker.read_log()
    result = client.send_task("demo.greet", kwargs={"person": ADA}, task_id=task_id())
    assert result.get(timeout=RESULT_TIMEOUT) == greeting(), worker.read_log()[-3000:]


# -- valid calls ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ([ADA, 2, True], {}, greeting("HELLO, ADA!HELLO, ADA!", times=2)),
        ([], {"person": ADA, "times": 3, "shout": False}, greeting("Hello, Ada!" * 3, times=3)),
        ([ADA], {"times": 2}, greeting("Hello, Ada!" * 2, times=2)),
        ([], {"person": ADA}, greeting()),
        ([{**ADA, "email": None}], {"shout": True}, greeting("HELLO, ADA!")),
    ],
    ids=["positional", "keyword", "mixed", "defaults-omitted", "optional-null"],
)
def test_valid_calls_run_typed_and_return_json(
    worker: Worker,
    client: Celery,
    args: list[Any],
    kwargs: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    # demo.greet asserts it got a Person instance: a dict would fail the task.
    id_ = task_id()
    result = client.send_task("demo.greet", args=args, kwargs=kwargs, task_id=id_)
    value = result.get(timeout=RESULT_TIMEOUT)
    assert type(value) is dict
    assert value == expected
    stored = json.loads(client.backend.get(client.backend.get_key_for_task(id_)))
    assert stored["status"] == "SUCCESS"
    assert stored["result"] == expected


# -- the malformed matrix --------------------------------------------------------------


@dataclass
class Case:
    """A hand-made message the worker must refuse, and how it must refuse it."""

    name: str
    body: Callable[[str], bytes]  # from the task id
    reason: str
    paths: list[str] = field(default_factory=list)
    task: str = "demo.greet"
    headers: Callable[[str], dict[str, Any]] | None = None  # default: task and id
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    no_content_type: bool = False
    has_id: bool = True
    message: str | None = None  # a substring of the refusal's message


def v2(args: Any, kwargs: Any, embed: Any = None) -> Callable[[str], bytes]:
    document = [args, kwargs, {} if embed is None else embed]
    return lambda _id: json.dumps(document).encode()


def constant(body: bytes) -> Callable[[str], bytes]:
    return lambda _id: body


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


MARKED_BORN = {"__type__": "datetime", "__value__": "1990-01-01T00:00:00+00:00"}


def escaped(body: Callable[[str], bytes]) -> Callable[[str], bytes]:
    """`body` with each __type__ key spelled through a JSON escape, as kombu still reads it."""
    return lambda id_: body(id_).replace(b'"__type__"', rb'"\u005f_type__"')


CASES = [
    Case("body-with-two-elements", constant(json.dumps([[], {"person": ADA}]).encode()),
         "malformed-envelope", ["/body"]),
    Case("body-not-an-array", constant(b'"hello"'), "malformed-envelope", ["/body"]),
    Case("missing-id-header", v2([], {"person": ADA}), "malformed-envelope", ["/headers/id"],
         headers=lambda _id: {"task": "demo.greet"}, has_id=False),
    Case("missing-content-type", v2([], {"person": ADA}), "content-type", no_content_type=True,
         message="no content type"),
    Case("undecodable-body", constant(b'[[], {"person": {"name": "Ada"'), "undecodable",
         message="invalid JSON"),
    Case("body-not-utf8", constant(b'[[], {"person": "\xff\xfe"}, {}]'), "undecodable",
         message="not UTF-8"),
    Case("body-too-deep", v2([], {"person": nested(100)}), "undecodable",
         message="deeper than"),
    Case("kwargs-not-an-object", v2([], [ADA]), "malformed-envelope", ["/kwargs"]),
    Case("args-not-a-list", v2({"person": ADA}, {}), "malformed-envelope", ["/args"]),
    Case("wrong-types", v2([], {"person": {"name": "", "born": "yesterday"}, "times": "3"}),
         "contract-violation", ["/person/born", "/person/name", "/times"]),
    Case("missing-required-param", v2([], {"times": 2}), "contract-violation", [""],
         message="break its contract"),
    Case("unknown-parameter", v2([], {"person": ADA, "colour": "red"}), "contract-violation",
         [""]),
    Case("surplus-positional", v2([ADA, 1, True, "extra"], {}), "signature", [""]),
    Case("param-given-twice", v2([ADA], {"person": ADA}), "signature", ["/person"]),
    Case("type-marker-datetime", v2([], {"person": {"name": "Ada", "born": MARKED_BORN}}),
         "type-marker", ["/kwargs/person/born"]),
    Case("type-marker-unknown", v2([{"__type__": "frobnicate", "__value__": 1}], {}),
         "type-marker", ["/args/0"]),
    # kombu reads "\u005f_type__" as __type__ and would hand the task a datetime.
    Case("type-marker-escaped", escaped(v2([], {"person": {"name": "Ada", "born": MARKED_BORN}})),
         "type-marker", ["/kwargs/person/born"]),
    Case("type-marker-escaped-no-contract", escaped(v2([{"at": MARKED_BORN}], {})),
         "type-marker", ["/args/0/at"], task="demo.untyped"),
    Case("type-marker-in-embed",
         v2([], {"person": ADA}, {"callbacks": [{"__type__": "frobnicate", "__value__": 1}]}),
         "type-marker", ["/body/2/callbacks/0"]),
    Case("body-over-configured-limit",
         v2([], {"person": {"name": "x" * CONFIGURED_MAX_BODY, "born": ADA["born"]}}),
         "too-large", message=f"over the limit of {CONFIGURED_MAX_BODY}"),
    Case("protocol-1-invalid",
         lambda id_: json.dumps({"task": "demo.greet", "id": id_, "args": [],
                                 "kwargs": {"person": ADA, "times": 9}}).encode(),
         "contract-violation", ["/times"], headers=lambda _id: {}),
    Case("protocol-1-without-task", constant(json.dumps({"args": [], "kwargs": {}}).encode()),
         "malformed-envelope", headers=lambda _id: {}, task="", has_id=False),
    Case("pickle-content-type", lambda _id: pickle.dumps(((), {"person": ADA}, {})),
         "content-type", content_type="application/x-python-serialize",
         content_encoding="binary", message="pickle never"),
    Case("unregistered-task", v2([], {}), "no-contract", task="demo.not_registered"),
]  # fmt: skip


def publish_case(setup: Setup, case: Case, id_: str) -> tuple[bytes, dict[str, Any]]:
    body = case.body(id_)
    headers = case.headers(id_) if case.headers else {"task": case.task, "id": id_, "lang": "py"}
    headers["x-test-case"] = f"{case.name}.{id_}"
    if case.no_content_type:
        publish_without_content_type(setup, body, headers)
    else:
        with setup.connection() as conn:
            publish_raw(conn, setup.queue, body, headers, case.content_type, case.content_encoding)
    return body, headers


def assert_dead_letter(
    letter: DeadLetter, case: Case, body: bytes, headers: dict[str, Any]
) -> None:
    assert hashlib.sha256(letter.body).hexdigest() == hashlib.sha256(body).hexdigest(), (
        f"the dead-letter copy is not the raw body: {letter.body[:200]!r}"
    )
    for name, value in headers.items():
        assert letter.headers.get(name) == value, (name, letter.headers)
    assert letter.headers["x-taskschema-reason"] == case.reason
    error = json.loads(letter.headers["x-taskschema-error"])
    assert error["error"] == case.reason
    assert sorted(v["path"] for v in error["violations"]) == sorted(case.paths), error
    if case.message:
        assert case.message in error["message"], error
    if not case.no_content_type:
        assert letter.content_type == case.content_type


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_malformed_message_is_refused_and_dead_lettered(
    setup: Setup, worker: Worker, client: Celery, dead_letters: DeadLetters, case: Case
) -> None:
    id_ = task_id()
    body, headers = publish_case(setup, case, id_)
    if case.has_id:
        violation = failure_of(client, id_)
        assert violation.error["error"] == case.reason, violation.error
        assert sorted(v.path for v in violation.violations) == sorted(case.paths)
        assert violation.error["task"] == (case.task or None)
    letter = dead_letters.wait_for(headers["x-test-case"])
    assert_dead_letter(letter, case, body, headers)
    assert_keeps_consuming(worker, client)


def test_body_just_under_the_limit_runs(worker: Worker, client: Celery) -> None:
    name = "x" * (CONFIGURED_MAX_BODY - 300)  # Celery's embed adds about 80 bytes
    result = client.send_task("demo.greet", args=[{**ADA, "name": name}])
    assert result.get(timeout=RESULT_TIMEOUT)["text"] == f"Hello, {name}!"


def test_protocol_1_valid_message_runs(setup: Setup, worker: Worker, client: Celery) -> None:
    id_ = task_id()
    body = {"task": "demo.greet", "id": id_, "args": [ADA], "kwargs": {"times": 2}}
    with setup.connection() as conn:
        publish_raw(conn, setup.queue, json.dumps(body).encode(), {})
    value = AsyncResult(id_, app=client).get(timeout=RESULT_TIMEOUT)
    assert value == greeting("Hello, Ada!" * 2, times=2)


def assert_refused_in_the_pool(
    letter: DeadLetter, id_: str, task: str, reason: str, paths: list[str]
) -> list[Any]:
    """A dead-letter copy of a message the pool refused: the message as sent, and why.
    Returns its decoded body."""
    assert (letter.headers["id"], letter.headers["task"]) == (id_, task)
    assert letter.headers["x-taskschema-reason"] == reason
    error = json.loads(letter.headers["x-taskschema-error"])
    assert (error["error"], error["task"]) == (reason, task)
    assert [v["path"] for v in error["violations"]] == paths
    assert letter.content_type == "application/json"
    body: list[Any] = json.loads(letter.body)
    return body


def test_wrong_return_value_fails_in_the_pool_and_is_dead_lettered(
    worker: Worker, client: Celery, dead_letters: DeadLetters
) -> None:
    id_ = task_id()
    case = f"broken-return.{id_}"
    client.send_task(
        "demo.broken_return", kwargs={"n": 3}, task_id=id_, headers={"x-test-case": case}
    )
    violation = failure_of(client, id_)
    assert violation.error["error"] == "return-violation"
    assert violation.error["task"] == "demo.broken_return"
    assert [v.path for v in violation.violations] == ["/total"]
    assert "demo.broken_return" in worker.read_log()
    letter = dead_letters.wait_for(case)
    body = assert_refused_in_the_pool(
        letter, id_, "demo.broken_return", "return-violation", ["/total"]
    )
    assert body[:2] == [[], {"n": 3}]
    assert set(body[2]) >= {"callbacks", "errbacks", "chain", "chord"}
    assert_keeps_consuming(worker, client)


def test_call_the_contract_accepts_but_the_model_refuses(
    worker: Worker, client: Celery, dead_letters: DeadLetters
) -> None:
    id_ = task_id()
    case = f"model-refuses.{id_}"
    leap_second = {"name": "Ada", "born": "1990-12-31T23:59:60Z"}  # valid RFC 3339 date-time
    client.send_task("demo.greet", args=[leap_second], task_id=id_, headers={"x-test-case": case})
    violation = failure_of(client, id_)
    assert violation.error["error"] == "signature"
    assert [v.path for v in violation.violations] == ["/person/born"]
    letter = dead_letters.wait_for(case)
    body = assert_refused_in_the_pool(letter, id_, "demo.greet", "signature", ["/person/born"])
    assert body[:2] == [[leap_second], {}]


# -- warn and off modes --------------------------------------------------------------------

# The refusals of messages that are not sound calls of a registered task: every mode
# refuses them, so that none can crash the worker or be lost.
ENVELOPE_CASES = [case for case in CASES if case.reason not in ("contract-violation", "signature")]


@dataclass
class Relaxed:
    """A worker of its own in mode warn or off, with its queues and a client."""

    mode: str
    setup: Setup
    worker: Worker
    client: Celery
    dead_letters: DeadLetters


@pytest.fixture(scope="module", params=["warn", "off"])
def relaxed(request: pytest.FixtureRequest, broker: str, logs: Path) -> Iterator[Relaxed]:
    mode: str = request.param
    setup = Setup(broker)
    setup.purge()
    client = setup.client()
    try:
        env = {"TASKSCHEMA_MODE": mode, "TEST_MAX_BODY_BYTES": str(CONFIGURED_MAX_BODY)}
        with running_worker(setup, logs, env, name=mode) as worker:
            yield Relaxed(mode, setup, worker, client, DeadLetters(setup))
    finally:
        client.close()
        setup.delete()


@pytest.mark.parametrize("case", ENVELOPE_CASES, ids=lambda case: case.name)
def test_warn_and_off_modes_still_refuse_malformed_messages(relaxed: Relaxed, case: Case) -> None:
    id_ = task_id()
    body, headers = publish_case(relaxed.setup, case, id_)
    if case.has_id:
        violation = failure_of(relaxed.client, id_)
        assert violation.error["error"] == case.reason, violation.error
        assert sorted(v.path for v in violation.violations) == sorted(case.paths)
    letter = relaxed.dead_letters.wait_for(headers["x-test-case"])
    assert_dead_letter(letter, case, body, headers)
    assert_keeps_consuming(relaxed.worker, relaxed.client)
    assert "Unrecoverable error" not in relaxed.worker.read_log()


def test_a_call_breaking_the_contract_runs_in_warn_and_off_modes(relaxed: Relaxed) -> None:
    id_ = task_id()
    result = relaxed.client.send_task(
        "demo.greet", kwargs={"person": ADA, "times": 0}, task_id=id_, headers={"x-test-case": id_}
    )
    assert result.get(timeout=RESULT_TIMEOUT) == greeting("", times=0)
    warned = f"lets demo.greet[{id_}] run, though it would refuse it" in relaxed.worker.read_log()
    assert warned == (relaxed.mode == "warn"), relaxed.worker.read_log()[-3000:]
    relaxed.dead_letters.assert_none(id_)


def test_a_wrong_return_is_returned_in_warn_and_off_modes(relaxed: Relaxed) -> None:
    id_ = task_id()
    result = relaxed.client.send_task(
        "demo.broken_return", args=[3], task_id=id_, headers={"x-test-case": id_}
    )
    assert result.get(timeout=RESULT_TIMEOUT) == {"total": "3"}
    log = relaxed.worker.read_log()
    warned = f"lets demo.broken_return[{id_}] go on" in log
    assert warned == (relaxed.mode == "warn"), log[-3000:]
    relaxed.dead_letters.assert_none(id_)


# -- the registry cannot be reached and nothing is cached ----------------------------


@dataclass
class Unavailable:
    id: str
    requeued: int  # log lines "... waits N s for its contract" within WATCH seconds
    result_state: str
    waiting_after_stop: int
    dead_letters: DeadLetters


WATCH = 3.0


@pytest.fixture(scope="module")
def unavailable(broker: str, logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Unavailable:
    """A worker whose registry is down with nothing cached gets one demo.greet call."""
    tmp = tmp_path_factory.mktemp("unavailable")
    (tmp / "no-contracts").mkdir()
    setup = Setup(broker)
    setup.purge()
    env = {
        "TASKSCHEMA_REGISTRY_URL": "http://127.0.0.1:9",  # discard port: connection refused
        "TEST_CONTRACTS": str(tmp / "no-contracts"),
        "TASKSCHEMA_CACHE_DIR": str(tmp / "cache"),
    }
    client = setup.client()
    id_ = task_id()
    try:
        with running_worker(setup, logs, env, name="unavailable") as worker:
            client.send_task(
                "demo.greet", kwargs={"person": ADA}, task_id=id_, headers={"x-test-case": id_}
            )
            time.sleep(WATCH)
            requeued = worker.read_log().count(f"demo.greet[{id_}] waits")
        outcome = Unavailable(
            id_,
            requeued,
            AsyncResult(id_, app=client).state,
            setup.waiting(),
            DeadLetters(setup),
        )
        outcome.dead_letters.assert_none(id_)
        return outcome
    finally:
        client.close()
        setup.delete()


def test_message_waits_while_its_contract_is_unavailable(unavailable: Unavailable) -> None:
    """Not the message's fault: no dead-letter copy, no FAILURE, still on the queue."""
    assert unavailable.requeued >= 1
    assert unavailable.result_state == "PENDING"
    assert unavailable.waiting_after_stop == 1


def test_contract_unavailable_requeue_backs_off(unavailable: Unavailable) -> None:
    # One wait per CONTRACT_RETRY_DELAY, not a hot loop between broker and consumer.
    limit = WATCH // CONTRACT_RETRY_DELAY + 1
    assert unavailable.requeued <= limit, f"requeued {unavailable.requeued} times in {WATCH}s"


# -- tasks without a contract ----------------------------------------------------------


def test_untyped_task_runs_when_unknown_tasks_are_allowed(worker: Worker, client: Celery) -> None:
    result = client.send_task("demo.untyped", args=[1, "a"], kwargs={"k": {"x": None}})
    assert result.get(timeout=RESULT_TIMEOUT) == [[1, "a"], {"k": {"x": None}}]


def test_untyped_task_is_refused_when_unknown_tasks_are_rejected(broker: str, logs: Path) -> None:
    setup = Setup(broker)
    setup.purge()
    try:
        with running_worker(setup, logs, {"TEST_UNKNOWN_TASKS": "reject"}, name="reject") as w:
            client = setup.client()
            id_ = task_id()
            case = f"untyped.{id_}"
            client.send_task("demo.untyped", args=[1], task_id=id_, headers={"x-test-case": case})
            violation = failure_of(client, id_)
            assert violation.error["error"] == "no-contract"
            assert violation.error["task"] == "demo.untyped"
            letter = DeadLetters(setup).wait_for(case)
            assert letter.headers["x-taskschema-reason"] == "no-contract"
            assert json.loads(letter.body)[:2] == [[1], {}]
            assert_keeps_consuming(w, client)
            client.close()
    finally:
        setup.delete()


# -- acks_late: a killed worker loses nothing ---------------------------------------------


def wait_for_file(path: Path, timeout: float, worker: Worker) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} never appeared:\n{worker.read_log()}", pytrace=False)
        time.sleep(0.05)


def test_killed_worker_task_is_redelivered(broker: str, logs: Path, tmp_path: Path) -> None:
    """SIGKILL the whole worker mid-task; a new worker runs the task to completion."""
    setup = Setup(broker)
    setup.purge()
    env = {"TEST_MARKER_DIR": str(tmp_path)}
    marker = unique("sleep")
    started, done = tmp_path / f"{marker}.started", tmp_path / marker
    client = setup.client()
    try:
        first = Worker(setup, logs, env, name="doomed").start()
        try:
            result = client.send_task(
                "demo.sleep", kwargs={"seconds": 8, "marker": marker}, task_id=task_id()
            )
            wait_for_file(started, RESULT_TIMEOUT, first)
            started_at = time.monotonic()
            first.kill()
        finally:
            first.stop()
        assert not done.exists()
        if broker == "redis":
            # Redis has no unacked state of its own: kombu restores a message once it has
            # been unacked for visibility_timeout (5 s in worker_app), and a new worker's
            # first poll sweeps for such messages. Start it once that time has passed.
            time.sleep(max(0.0, started_at + 5.5 - time.monotonic()))
        with running_worker(setup, logs, env, name="heir") as second:
            assert result.get(timeout=30) == marker, second.read_log()
        first_pid, *rest = started.read_text().split()
        assert rest, "the task was not started again"
        assert done.read_text().split() == [rest[-1]]
        assert first_pid not in done.read_text()
    finally:
        client.close()
        setup.delete()


# -- the registry is down: contracts come from the disk cache ---------------------------


def test_worker_validates_from_cache_while_registry_is_down(logs: Path, tmp_path: Path) -> None:
    """The contract cache does not depend on the broker: this runs once, on AMQP."""
    broker = "amqp"
    require_services(broker)
    database = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_run = start_registry(RegistrySettings(database_url=database), "sqlite")
    registry = next(registry_run)
    try:
        for path in sorted(CONTRACTS.glob("demo.*.json")):
            document = json.loads(path.read_bytes())
            response = registry.publisher.post(f"/tasks/{document['task']}/versions", json=document)
            assert response.status_code in (200, 201), response.text
        empty = tmp_path / "no-contracts"
        empty.mkdir()
        cache = tmp_path / "cache"
        env = {
            "TASKSCHEMA_REGISTRY_URL": registry.url,
            "TEST_CONTRACTS": str(empty),
            "TASKSCHEMA_CACHE_DIR": str(cache),
        }
        setup = Setup(broker)
        setup.purge()
        client = setup.client()
        try:
            with running_worker(setup, logs, env, name="online") as online:
                # The worker preloads the demo contracts; a call proves they are in use.
                invalid = client.send_task("demo.greet", kwargs={"person": ADA, "times": 0})
                assert failure_of(client, invalid.id).error["error"] == "contract-violation"
                valid = client.send_task("demo.greet", kwargs={"person": ADA})
                assert valid.get(timeout=RESULT_TIMEOUT) == greeting(), online.read_log()
            cached = {p.name for p in cache.rglob("*.json")}
            assert "demo.greet.json" in cached, cached
        finally:
            next(registry_run, None)  # stops the registry
        with pytest.raises(httpx.TransportError):
            httpx.get(registry.url, timeout=2)
        try:
            with running_worker(setup, logs, env, name="offline") as offline:
                id_ = task_id()
                case = f"offline.{id_}"
                client.send_task(
                    "demo.greet",
                    kwargs={"person": ADA, "times": "twice"},
                    task_id=id_,
                    headers={"x-test-case": case},
                )
                violation = failure_of(client, id_)
                assert violation.error["error"] == "contract-violation"
                assert [v.path for v in violation.violations] == ["/times"]
                letter = DeadLetters(setup).wait_for(case)
                assert letter.headers["x-taskschema-reason"] == "contract-violation"
                valid = client.send_task("demo.greet", args=[ADA, 2])
                assert valid.get(timeout=RESULT_TIMEOUT) == greeting("Hello, Ada!" * 2, times=2), (
                    offline.read_log()
                )
        finally:
            client.close()
            setup.delete()
    finally:
        next(registry_run, None)


# -- the typed producer ------------------------------------------------------------------

GREET = TaskContract.from_json(
    (Path(__file__).parent / "contracts" / "demo.greet.json").read_bytes()
)


def test_typed_task_sends_models_and_gets_the_return_model(
    setup: Setup, worker: Worker, client: Celery
) -> None:
    greet = TypedTask[Greeting](client, GREET, Greeting)
    assert greet.options == {"queue": "demo"}  # from the contract
    person = Person(name="Ada", born=datetime(1990, 1, 1, tzinfo=UTC), email=None)
    result = greet.apply_async([person], {"times": 2}, queue=setup.queue)
    value = result.get(timeout=RESULT_TIMEOUT)
    assert value == Greeting(text="Hello, Ada!" * 2, age_days=ADA_AGE_DAYS, times=2)
    # On the wire: plain JSON, parameters by name, the datetime as an ISO string.
    assert greet.bind([person]) == {
        "person": {"name": "Ada", "born": "1990-01-01T00:00:00Z", "email": None}
    }


def test_typed_task_refuses_a_bad_call_before_publishing(setup: Setup, client: Celery) -> None:
    greet = TypedTask[Greeting](client, GREET, Greeting)
    with pytest.raises(CallValidationError) as raised:
        greet.apply_async(
            kwargs={"person": {"name": "", "born": "soon"}, "times": 0}, queue=setup.queue
        )
    assert [v.path for v in raised.value.violations] == ["/person/born", "/person/name", "/times"]
    with pytest.raises(CallValidationError):
        greet.delay(ADA, person=ADA)
