"""The Node producer (clients/node) against real RabbitMQ and Redis and a real worker.

Every send runs a real Node process (clients/node/test/harness.ts, built) that creates a
producer, sends one task and waits for `get()`. On each broker: keyword, positional and
mixed calls run on a prefork worker with the validating decoder and their results come back;
a call the worker refuses rejects with the violations and is dead-lettered while the worker
keeps going; a task that raises rejects with its exception; with a live registry, an invalid
call is refused before anything is published and the contract's options are applied. The
messages Node publishes are read back with kombu and compared with what Celery's own
`send_task` publishes for the same call. The package's own unit tests (`npm test`) run too.
"""

from __future__ import annotations

import base64
import json
import operator
import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Queue
from kombu.message import Message
from nodejs import npm, run_node, send
from workers import (
    REDIS_BROKER_DB,
    REDIS_HOST,
    REDIS_PORT,
    RESULT_BACKEND_DB,
    RESULT_BACKEND_URL,
    RESULT_TIMEOUT,
    DeadLetters,
    Setup,
    Worker,
    running_worker,
)

from taskschema import TaskContract
from taskschema._sources import StaticContracts
from taskschema.kombu import MessageDecoder, TaskCall

from conftest import Registry

CONTRACTS = Path(__file__).resolve().parent / "contracts"
GREET = json.loads((CONTRACTS / "demo.greet.json").read_text())

ADA = {"name": "Ada", "born": "1990-01-01T00:00:00Z"}
ADA_AGE_DAYS = 13149  # 1990-01-01 to 2026-01-01, as demo.greet computes it
INVALID_KWARGS = {"person": {"name": "", "born": "yesterday"}, "times": 9}
INVALID_PATHS = {"/person/name", "/person/born", "/times"}
GET = {"timeoutMs": int(RESULT_TIMEOUT * 1000)}


def greeting(text: str = "Hello, Ada!", times: int = 1) -> dict[str, Any]:
    return {"text": text, "age_days": ADA_AGE_DAYS, "times": times}


def test_unit_tests_pass(node_client: Path) -> None:
    """`npm test`: the package's own unit tests (message building, validation, results)."""
    done = npm("test")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.MULTILINE)
    assert passed, done.stdout[-2000:]
    assert int(passed.group(1)) > 0
    assert re.search(r"^# fail 0$", done.stdout, re.MULTILINE), done.stdout[-5000:]


# -- brokers, worker, registry ------------------------------------------------------


@pytest.fixture(scope="module")
def worker(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    markers = tmp_path_factory.mktemp("node-markers")
    with running_worker(
        setup, tmp_path_factory.mktemp("node-logs"), {"TEST_MARKER_DIR": str(markers)}, "node"
    ) as running:
        yield running


@pytest.fixture
def scratch(broker: str) -> Iterator[Setup]:
    """Queues no worker reads, removed afterwards (not declared: the producer must)."""
    queues = Setup(broker)
    yield queues
    queues.delete()
    if broker == "amqp":  # the exchange of the same name the producer (or Celery) declared
        with queues.connection() as conn:
            conn.default_channel.exchange_delete(queues.queue)


@pytest.fixture(scope="module")
def registry(sqlite_registry: Registry) -> Registry:
    """The live registry with the demo contracts published."""
    for path in sorted(CONTRACTS.glob("demo.*.json")):
        document = json.loads(path.read_text())
        response = sqlite_registry.publisher.post(
            f"/tasks/{document['task']}/versions", json=document
        )
        assert response.status_code in (200, 201), response.text
    return sqlite_registry


def waiting(setup: Setup) -> int:
    """Messages on the scratch queue (on Redis: on all its priority lists)."""
    if setup.broker == "redis":
        client = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_BROKER_DB)
        return sum(int(client.llen(key)) for key in client.scan_iter(match=f"{setup.queue}*"))
    try:
        return setup.waiting()
    except Exception:  # never declared: nothing was published
        return 0


def result_stored(task_id: str) -> bool:
    client = redis.Redis(REDIS_HOST, REDIS_PORT, db=RESULT_BACKEND_DB)
    return bool(client.exists(f"celery-task-meta-{task_id}"))


# -- sends that run -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ([], {"person": ADA, "times": 2}, greeting("Hello, Ada!" * 2, times=2)),
        ([ADA, 2, True], {}, greeting("HELLO, ADA!" * 2, times=2)),
        ([ADA], {"shout": True}, greeting("HELLO, ADA!")),
    ],
    ids=["keyword", "positional", "mixed"],
)
def test_call_runs_and_result_comes_back(
    node_client: Path,
    setup: Setup,
    worker: Worker,
    args: list[Any],
    kwargs: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    out = send(
        node_client,
        setup.broker_url,
        "demo.greet",
        args=args,
        kwargs=kwargs,
        options={"queue": setup.queue},
        get=GET,
    )
    assert out.get("result") == expected, (out, worker.read_log()[-3000:])
    uuid.UUID(out["id"])


def test_arguments_arrive_as_sent(node_client: Path, setup: Setup, worker: Worker) -> None:
    """Unicode, nesting, floats, nulls and large safe integers survive the trip both ways."""
    args = ["Grüße ✓ 𝄞", [1, [2.5, None]], {"nested": {"deep": [True, False]}}]
    kwargs = {"big": 2**53 - 1, "small": -1e-7, "empty": {}, "quote": 'it\'s "x"\n'}
    out = send(
        node_client,
        setup.broker_url,
        "demo.untyped",
        args=args,
        kwargs=kwargs,
        options={"queue": setup.queue},
        get=GET,
    )
    assert out.get("result") == [args, kwargs], (out, worker.read_log()[-3000:])


# -- failures -----------------------------------------------------------------------


def test_call_refused_by_worker_rejects_with_violations(
    node_client: Path, setup: Setup, worker: Worker
) -> None:
    dead_letters = DeadLetters(setup)
    out = send(
        node_client,
        setup.broker_url,
        "demo.greet",
        kwargs=INVALID_KWARGS,
        options={"queue": setup.queue},
        get=GET,
    )
    error = out["error"]
    assert error["name"] == "ContractViolationError", error
    assert error["isTaskSchemaError"]
    assert (error["taskId"], error["task"], error["state"]) == (out["id"], "demo.greet", "FAILURE")
    assert (error["excType"], error["reason"]) == ("ContractViolation", "contract-violation")
    assert {v["path"] for v in error["violations"]} == INVALID_PATHS
    assert all(set(v) == {"path", "message"} and v["message"] for v in error["violations"])
    assert "/times: 9 is greater than the maximum of 5" in error["message"]
    letter = dead_letters.wait_for(out["id"])
    assert letter.headers["x-taskschema-reason"] == "contract-violation"
    assert json.loads(letter.body)[1] == INVALID_KWARGS
    # The worker is still there and still runs valid calls.
    assert worker.alive, worker.read_log()
    again = send(
        node_client,
        setup.broker_url,
        "demo.greet",
        kwargs={"person": ADA},
        options={"queue": setup.queue},
        get=GET,
    )
    assert again.get("result") == greeting(), again


def test_task_exception_rejects_with_task_failed_error(
    node_client: Path, setup: Setup, worker: Worker
) -> None:
    """The soft limit (second in Celery's `timelimit` header) interrupts the task, which
    fails with SoftTimeLimitExceeded; were the limits swapped, the hard limit would kill it."""
    out = send(
        node_client,
        setup.broker_url,
        "demo.sleep",
        kwargs={"seconds": 10, "marker": uuid.uuid4().hex},
        options={"queue": setup.queue, "softTimeLimit": 0.5, "timeLimit": 8},
        get=GET,
    )
    error = out["error"]
    assert error["name"] == "TaskFailedError", (error, worker.read_log()[-3000:])
    assert (error["excType"], error["state"]) == ("SoftTimeLimitExceeded", "FAILURE")
    assert "SoftTimeLimitExceeded" in error["message"]
    assert "violations" not in error


def test_get_times_out_without_a_worker(node_client: Path, scratch: Setup) -> None:
    out = send(
        node_client,
        scratch.broker_url,
        "demo.greet",
        kwargs={"person": ADA},
        options={"queue": scratch.queue},
        get={"timeoutMs": 300, "intervalMs": 50},
    )
    error = out["error"]
    assert (error["name"], error["state"], error["timeoutMs"]) == (
        "TaskTimeoutError",
        "PENDING",
        300,
    )
    assert error["taskId"] == out["id"]
    assert waiting(scratch) == 1


# -- with the registry ----------------------------------------------------------------


def test_invalid_call_is_refused_before_publishing(
    node_client: Path, scratch: Setup, registry: Registry
) -> None:
    task_id = str(uuid.uuid4())
    out = send(
        node_client,
        scratch.broker_url,
        "demo.greet",
        args=[INVALID_KWARGS["person"]],
        kwargs={"times": 9},
        options={"queue": scratch.queue, "taskId": task_id},
        registry=registry.url,
    )
    error = out["error"]
    assert error["name"] == "ValidationError", error
    assert "id" not in out
    assert error["task"] == "demo.greet"
    assert {v["path"] for v in error["violations"]} == INVALID_PATHS
    assert "arguments of demo.greet break its contract" in error["message"]
    time.sleep(0.3)
    assert waiting(scratch) == 0
    assert not result_stored(task_id)
    # The same call with validation off for this send is published: the refusal above was
    # the validation, not an unusable queue.
    out = send(
        node_client,
        scratch.broker_url,
        "demo.greet",
        args=[INVALID_KWARGS["person"]],
        kwargs={"times": 9},
        options={"queue": scratch.queue, "validate": False},
        registry=registry.url,
    )
    assert "error" not in out, out
    assert waiting(scratch) == 1


def test_valid_call_passes_validation_and_runs(
    node_client: Path, setup: Setup, worker: Worker, registry: Registry
) -> None:
    # The contract's queue is "demo"; an explicit queue wins.
    out = send(
        node_client,
        setup.broker_url,
        "demo.greet",
        args=[ADA, 3],
        options={"queue": setup.queue},
        registry=registry.url,
        get=GET,
    )
    assert out.get("result") == greeting("Hello, Ada!" * 3, times=3), out


def test_unknown_task_cannot_be_validated(
    node_client: Path, scratch: Setup, registry: Registry
) -> None:
    out = send(
        node_client,
        scratch.broker_url,
        "nosuch.task",
        options={"queue": scratch.queue},
        registry=registry.url,
    )
    assert out["error"]["name"] == "ValidationError"
    assert "nosuch.task has no contract in the registry" in out["error"]["message"]
    assert waiting(scratch) == 0


def consume(setup: Setup, count: int) -> list[Message]:
    """Take `count` messages off the scratch queue with kombu, before any worker sees them."""
    messages: list[Message] = []
    deadline = time.monotonic() + 10
    with setup.connection() as conn:
        queue = Queue(setup.queue, durable=True)(conn.default_channel)
        while len(messages) < count and time.monotonic() < deadline:
            message = queue.get(no_ack=True)
            if message is None:
                time.sleep(0.05)
            else:
                messages.append(message)
    assert len(messages) == count, f"{len(messages)} of {count} messages on {setup.queue}"
    return messages


def raw_redis(setup: Setup) -> dict[str, list[bytes]]:
    """The Redis broker's lists for the scratch queue: key -> envelopes, as stored."""
    client = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_BROKER_DB)
    return {
        key.decode(): list(client.lrange(key, 0, -1))
        for key in client.scan_iter(match=f"{setup.queue}*")
    }


def test_contract_options_are_applied(
    node_client: Path, broker: str, scratch: Setup, registry: Registry
) -> None:
    """Queue, priority, time limits and expiry come from the contract; send options win."""
    task = f"node{uuid.uuid4().hex[:10]}.greet"
    options = {"queue": scratch.queue, "priority": 7, "time_limit": 30, "soft_time_limit": 20}
    contract = {**GREET, "task": task, "options": {**options, "expires": 600}}
    response = registry.publisher.post(f"/tasks/{task}/versions", json=contract)
    assert response.status_code == 201, response.text
    first = send(node_client, scratch.broker_url, task, args=[ADA], registry=registry.url)
    second = send(
        node_client,
        scratch.broker_url,
        task,
        args=[ADA],
        options={"priority": 2, "softTimeLimit": 5},
        registry=registry.url,
    )
    if broker == "redis":  # priorities are separate lists: 7 goes to step 6, 2 to step 0
        lists = raw_redis(scratch)
        ids = {
            key: [json.loads(raw)["headers"]["id"] for raw in items] for key, items in lists.items()
        }
        assert ids == {
            f"{scratch.queue}\x06\x166": [first["id"]],
            scratch.queue: [second["id"]],
        }
    by_id = {m.headers["id"]: m for m in consume(scratch, 2)}
    for out, priority, soft in ((first, 7, 20), (second, 2, 5)):
        message = by_id[out["id"]]
        assert message.properties["priority"] == priority
        assert message.headers["timelimit"] == [30, soft]
        assert message.headers["task"] == task
        expires = datetime.fromisoformat(message.headers["expires"])
        assert 590 < expires.timestamp() - time.time() <= 600
        assert message.properties["expiration"] == "600000"
        assert message.delivery_info["routing_key"] == scratch.queue


# -- the wire format ---------------------------------------------------------------


def test_messages_match_what_celery_sends(node_client: Path, broker: str, scratch: Setup) -> None:
    """Read back with kombu, Node's message equals Celery's `send_task` of the same call
    (apart from ids and timestamps), and the validating decoder accepts it."""
    node_id, celery_id = str(uuid.uuid4()), str(uuid.uuid4())
    args, kwargs = [ADA], {"times": 2}
    # Node first: it declares the queue, and Celery's own declaration must agree with it.
    out = send(
        node_client,
        scratch.broker_url,
        "demo.greet",
        args=args,
        kwargs=kwargs,
        options={
            "queue": scratch.queue,
            "taskId": node_id,
            "priority": 5,
            "countdown": 30,
            "expires": 60,
            "timeLimit": 10,
            "softTimeLimit": 5,
        },
    )
    assert out == {"id": node_id}
    app = Celery("node-compare", broker=scratch.broker_url, backend=RESULT_BACKEND_URL)
    app.conf.update(task_serializer="json", accept_content=["json"])
    with app:
        app.send_task(
            "demo.greet",
            args=args,
            kwargs=kwargs,
            queue=scratch.queue,
            task_id=celery_id,
            priority=5,
            countdown=30,
            expires=60,
            time_limit=10,
            soft_time_limit=5,
        )
    if broker == "redis":
        (key,) = raw_redis(scratch)
        assert key == f"{scratch.queue}\x06\x163"  # priority 5: kombu's step 3
        raw = {json.loads(item)["headers"]["id"]: item for item in raw_redis(scratch)[key]}
        node, celery = json.loads(raw[node_id]), json.loads(raw[celery_id])
        # Written as kombu writes it: Python's json.dumps, byte for byte.
        assert raw[node_id] == json.dumps(node).encode()
        assert raw[celery_id] == json.dumps(celery).encode()
        assert list(node) == list(celery)
        assert list(node["properties"]) == list(celery["properties"])
        for name in ("content-type", "content-encoding"):
            assert node[name] == celery[name]
        for name in ("delivery_info", "body_encoding", "delivery_mode", "priority", "expiration"):
            assert node["properties"][name] == celery["properties"][name], name
        uuid.UUID(node["properties"]["delivery_tag"])
        base64.b64decode(node["body"], validate=True)

    messages = {m.headers["id"]: m for m in consume(scratch, 2)}
    node_message, celery_message = messages[node_id], messages[celery_id]
    assert node_message.content_type == celery_message.content_type == "application/json"
    assert node_message.content_encoding == celery_message.content_encoding == "utf-8"
    assert node_message.body == celery_message.body  # the same bytes
    ids = {"id", "root_id", "origin", "eta", "expires"}
    assert set(node_message.headers) == set(celery_message.headers)
    assert {k: v for k, v in node_message.headers.items() if k not in ids} == {
        k: v for k, v in celery_message.headers.items() if k not in ids
    }
    assert node_message.headers["root_id"] == node_id
    assert re.fullmatch(
        rf"gen\d+@{re.escape(socket.gethostname())}", node_message.headers["origin"]
    )
    for name in ("eta", "expires"):
        ours = datetime.fromisoformat(node_message.headers[name])
        theirs = datetime.fromisoformat(celery_message.headers[name])
        assert ours.utcoffset() == theirs.utcoffset()
        assert abs((ours - theirs).total_seconds()) < 10, name
    per_message = {"correlation_id", "reply_to", "delivery_tag", "application_headers"}
    assert {k: v for k, v in node_message.properties.items() if k not in per_message} == {
        k: v for k, v in celery_message.properties.items() if k not in per_message
    }
    assert node_message.properties["correlation_id"] == node_id
    uuid.UUID(node_message.properties["reply_to"])
    contract = TaskContract.from_json((CONTRACTS / "demo.greet.json").read_bytes())
    verdict = MessageDecoder(StaticContracts([contract])).decode(node_message)
    assert isinstance(verdict, TaskCall), verdict
    assert verdict.params == {"person": ADA, "times": 2, "shout": False}  # defaults filled


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
    # Long strings, built by repetition to stay cheap for hypothesis: Celery cuts them.
    | st.builds(operator.mul, st.text(max_size=12), st.integers(0, 150))
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=20,
)
ARGS = st.lists(JSON_VALUES, max_size=5) | st.builds(
    # Long argument lists: Celery cuts them past 1024 characters and closes the brackets.
    operator.mul,
    st.lists(JSON_VALUES, min_size=1, max_size=3),
    st.integers(0, 200),
)
KWARGS = st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5)


def as_floats(value: Any) -> Any:
    if isinstance(value, list):
        return [as_floats(item) for item in value]
    if isinstance(value, dict):
        return {key: as_floats(item) for key, item in value.items()}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


# One call per example keeps each Node run small.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=ARGS, kwargs=KWARGS)
def test_headers_and_body_match_celery_for_any_arguments(
    node_client: Path, args: list[Any], kwargs: dict[str, Any]
) -> None:
    """For generated arguments, Node's headers (argsrepr and kwargsrepr included, as
    Celery's saferepr cuts and nests them) equal those Celery's `as_task_v2` builds for the
    arguments the worker decodes from Node's body."""
    task_id = str(uuid.uuid4())
    (message,) = run_node(
        "build-messages.js",
        [{"task": "demo.untyped", "id": task_id, "args": args, "kwargs": kwargs}],
    )
    body = json.loads(message["body"])
    assert message["body"] == json.dumps(body)  # as kombu serializes it
    decoded_args, decoded_kwargs, embed = body
    # JavaScript has only doubles: compare numbers as Python floats.
    assert as_floats([decoded_args, decoded_kwargs]) == as_floats([args, kwargs])
    expected = Celery("node-repr", set_as_current=False).amqp.as_task_v2(
        task_id,  # as send_task calls it
        "demo.untyped",
        args=decoded_args,
        kwargs=decoded_kwargs,
        origin="gen0@test",
        ignore_result=None,
    )
    assert message["headers"] == expected.headers
    assert embed == dict(expected.body[2])
