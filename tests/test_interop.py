"""The interop matrix: every kind of producer against a real worker with the decoder.

For each producer and broker, a valid call runs with typed arguments (demo.greet asserts
it got a `Person` and computes from its `datetime`) and its result is read back; an
invalid call ends as a FAILURE listing the violations, a dead-letter copy of it exists,
and the worker goes on running valid calls.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import pytest
from celery import Celery
from celery.result import AsyncResult
from prometheus_client.parser import text_string_to_metric_families
from workers import (
    BROKERS,
    RESULT_TIMEOUT,
    DeadLetters,
    Setup,
    Worker,
    publish_raw,
    require_services,
    running_worker,
)

from taskschema._exceptions import ContractViolation

ADA = {"name": "Ada", "born": "1990-01-01T00:00:00Z"}
ADA_AGE_DAYS = (datetime(2026, 1, 1, tzinfo=UTC) - datetime(1990, 1, 1, tzinfo=UTC)).days
VALID_KWARGS = {"person": ADA, "times": 2}
EXPECTED = {"text": "Hello, Ada!" * 2, "age_days": ADA_AGE_DAYS, "times": 2}
# Two violations at once: every one must come back, each with its JSON path.
INVALID_KWARGS = {"person": {"name": "", "born": "yesterday"}, "times": 9}
INVALID_PATHS = {"/person/name", "/person/born", "/times"}

# Every optional protocol 2 header, sent as null, the way loosely typed clients do.
OPTIONAL_HEADERS = (
    "lang", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
    "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
    "stamped_headers", "stamps", "replaced_task_nesting",
)  # fmt: skip


class Producer(Protocol):
    """One way of getting a demo.greet call onto the broker."""

    def send(self, setup: Setup, kwargs: dict[str, Any]) -> str:
        """Publish a call with `kwargs`; return its task id."""
        ...


@dataclass(frozen=True)
class RawV2:
    """Hand-made protocol 2 messages: only `task` and `id` headers (optionally every
    other header null), and a kwargs-only body."""

    null_headers: bool = False

    def send(self, setup: Setup, kwargs: dict[str, Any]) -> str:
        id_ = str(uuid.uuid4())
        headers: dict[str, Any] = dict.fromkeys(OPTIONAL_HEADERS) if self.null_headers else {}
        headers |= {"task": "demo.greet", "id": id_}
        body = json.dumps([[], kwargs, {}]).encode()
        with setup.connection() as conn:
            publish_raw(conn, setup.queue, body, headers)
        return id_


@dataclass(frozen=True)
class RawV2Positional:
    """Protocol 2 with positional arguments only, as clients without keyword support send."""

    def send(self, setup: Setup, kwargs: dict[str, Any]) -> str:
        id_ = str(uuid.uuid4())
        args = [kwargs["person"], kwargs["times"]]
        with setup.connection() as conn:
            publish_raw(
                conn,
                setup.queue,
                json.dumps([args, {}, {}]).encode(),
                {"task": "demo.greet", "id": id_},
            )
        return id_


@dataclass(frozen=True)
class RawV1:
    """Protocol 1: task, id, args and kwargs in the body and no headers, as older Go
    clients send."""

    def send(self, setup: Setup, kwargs: dict[str, Any]) -> str:
        id_ = str(uuid.uuid4())
        body = {"task": "demo.greet", "id": id_, "args": [], "kwargs": kwargs}
        with setup.connection() as conn:
            publish_raw(conn, setup.queue, json.dumps(body).encode(), {})
        return id_


PRODUCERS: dict[str, Producer] = {
    "raw-v2-minimal-headers": RawV2(),
    "raw-v2-null-headers": RawV2(null_headers=True),
    "raw-v2-positional": RawV2Positional(),
    "raw-v1": RawV1(),
}


@pytest.fixture(scope="module", params=BROKERS)
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    require_services(request.param)
    queues = Setup(request.param)
    queues.purge()
    yield queues
    queues.delete()


@pytest.fixture(scope="module")
def metrics_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def worker(
    setup: Setup, tmp_path_factory: pytest.TempPathFactory, metrics_port: int
) -> Iterator[Worker]:
    env = {"TEST_METRICS_PORT": str(metrics_port)}
    with running_worker(setup, tmp_path_factory.mktemp("interop-logs"), env, "interop") as w:
        yield w


@pytest.fixture(scope="module")
def client(setup: Setup) -> Iterator[Celery]:
    app = setup.client()
    yield app
    app.close()


@pytest.fixture(scope="module")
def dead_letters(setup: Setup) -> DeadLetters:
    return DeadLetters(setup)


@pytest.fixture(params=sorted(PRODUCERS))
def producer(request: pytest.FixtureRequest) -> Producer:
    return PRODUCERS[request.param]


def test_valid_call_runs_typed(
    producer: Producer, setup: Setup, worker: Worker, client: Celery
) -> None:
    id_ = producer.send(setup, VALID_KWARGS)
    value = AsyncResult(id_, app=client).get(timeout=RESULT_TIMEOUT)
    assert value == EXPECTED, worker.read_log()[-3000:]


def test_invalid_call_fails_with_violations_and_is_dead_lettered(
    producer: Producer,
    setup: Setup,
    worker: Worker,
    client: Celery,
    dead_letters: DeadLetters,
) -> None:
    id_ = producer.send(setup, INVALID_KWARGS)
    result = AsyncResult(id_, app=client)
    error = result.get(timeout=RESULT_TIMEOUT, propagate=False)
    assert result.state == "FAILURE", worker.read_log()[-3000:]
    assert isinstance(error, ContractViolation), repr(error)
    assert {v.path for v in error.violations} == INVALID_PATHS
    letter = dead_letters.wait_for(id_)
    assert letter.headers["x-taskschema-reason"] == "contract-violation"
    # The worker is still there and still runs valid calls.
    assert worker.alive, worker.read_log()
    valid = producer.send(setup, VALID_KWARGS)
    assert AsyncResult(valid, app=client).get(timeout=RESULT_TIMEOUT) == EXPECTED


def counter(metrics_port: int, **labels: str) -> float:
    """The value of `taskschema_messages_total` with `labels`, scraped from the worker."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "taskschema_messages_total" and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_worker_counts_messages_for_prometheus(
    setup: Setup, worker: Worker, client: Celery, metrics_port: int
) -> None:
    accepted = {"task": "demo.greet", "outcome": "accepted", "reason": ""}
    refused = {"task": "demo.greet", "outcome": "rejected", "reason": "contract-violation"}
    deadline = time.monotonic() + RESULT_TIMEOUT
    while True:  # the endpoint comes up as the worker initialises
        try:
            before = counter(metrics_port, **accepted), counter(metrics_port, **refused)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    ids = [RawV2().send(setup, VALID_KWARGS) for _ in range(3)]
    ids.append(RawV2().send(setup, INVALID_KWARGS))
    for id_ in ids:
        AsyncResult(id_, app=client).get(timeout=RESULT_TIMEOUT, propagate=False)
    after = counter(metrics_port, **accepted), counter(metrics_port, **refused)
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)
