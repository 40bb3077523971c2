"""The interop matrix: every kind of producer against a real worker with the decoder.

For each producer and broker, a valid call runs with typed arguments (demo.greet asserts
it got a `Person` and computes from its `datetime`) and its result is read back; an
invalid call ends as a FAILURE listing the violations, a dead-letter copy of it exists,
and the worker goes on running valid calls.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import nodejs
import pytest
from celery import Celery
from celery.result import AsyncResult
from prometheus_client.parser import text_string_to_metric_families
from workers import (
    RESULT_BACKEND_URL,
    RESULT_TIMEOUT,
    TESTS,
    DeadLetters,
    Setup,
    Worker,
    publish_raw,
    running_worker,
)

from registry_service import RegistrySettings
from taskschema._exceptions import ContractViolation

from conftest import live_registry, service_missing
from helpers import free_port

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


@dataclass(frozen=True)
class GeneratedStub:
    """Python through the stubs `taskschema codegen` generates: checked, typed sends.

    The stubs are generated from a looser, older contract of demo.greet than the worker
    enforces (no length, format or range limits), as when a producer was built against
    an earlier version: its invalid calls get past the stub and the worker refuses them.
    """

    module: Any  # the generated demo_tasks.demo package

    def send(self, setup: Setup, kwargs: dict[str, Any]) -> str:
        greet, person = self.module.greet, self.module.Person
        app = setup.client()
        call = {**kwargs, "person": person.model_validate(kwargs["person"])}
        result = greet.using(app).apply_async(call, queue=setup.queue)
        app.close()
        return str(result.id)


@dataclass(frozen=True)
class NodeClient:
    """The Node producer (clients/node), in a real Node process, without client-side
    validation so the worker is the one to refuse."""

    package: Path

    def send(self, setup: Setup, kwargs: dict[str, Any]) -> str:
        out = nodejs.send(
            self.package, setup.broker_url, "demo.greet", kwargs=kwargs,
            options={"queue": setup.queue},
        )  # fmt: skip
        assert "error" not in out, out
        return str(out["id"])


@dataclass(frozen=True)
class CurlGateway:
    """`curl` against the registry's task gateway, which validates against the registered
    contract (the older, looser one, as for the stubs) and publishes for the caller."""

    url: str
    token: str

    def send(self, setup: Setup, kwargs: dict[str, Any]) -> str:
        sent = subprocess.run(
            ["curl", "-sf", "-X", "POST", f"{self.url}/tasks/demo.greet/send",
             "-H", f"Authorization: Bearer {self.token}", "-H", "Content-Type: application/json",
             "-d", json.dumps({"kwargs": kwargs, "options": {"queue": setup.queue}})],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert sent.returncode == 0, (sent.returncode, sent.stdout, sent.stderr)
        return str(json.loads(sent.stdout)["task_id"])


def loosened(contract: dict[str, Any]) -> dict[str, Any]:
    """demo.greet as an older producer knew it: without the limits the worker checks."""
    person = contract["$defs"]["Person"]["properties"]
    del person["name"]["minLength"], person["born"]["format"]
    del contract["params"]["properties"]["times"]["maximum"]
    return contract


def older_greet() -> dict[str, Any]:
    return loosened(json.loads((TESTS / "contracts" / "demo.greet.json").read_text()))


def generated_stubs(folder: Path) -> Any:
    contracts = folder / "contracts"
    contracts.mkdir()
    greet = older_greet()
    (contracts / "demo.greet.json").write_text(json.dumps(greet))
    generated = subprocess.run(
        [Path(sys.executable).parent / "taskschema", "codegen", "--from", contracts,
         "--out", folder / "interop_stubs"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("interop_stubs.demo")
    finally:
        sys.path.remove(str(folder))


PRODUCERS: dict[str, Producer] = {
    "raw-v2-minimal-headers": RawV2(),
    "raw-v2-null-headers": RawV2(null_headers=True),
    "raw-v2-positional": RawV2Positional(),
    "raw-v1": RawV1(),
}


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def worker(
    setup: Setup, tmp_path_factory: pytest.TempPathFactory, metrics_port: int
) -> Iterator[Worker]:
    env = {"TEST_METRICS_PORT": str(metrics_port)}
    with running_worker(setup, tmp_path_factory.mktemp("interop-logs"), env, "interop") as w:
        yield w


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return generated_stubs(tmp_path_factory.mktemp("interop-stubs"))


@pytest.fixture(scope="module")
def gateway(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CurlGateway]:
    if shutil.which("curl") is None:
        service_missing("curl", FileNotFoundError("curl is not on PATH"))
    database = tmp_path_factory.mktemp("interop-registry") / "registry.db"
    settings = RegistrySettings(
        database_url=f"sqlite:///{database}",
        broker_url=setup.broker_url,
        result_backend=RESULT_BACKEND_URL,
    )
    with live_registry(settings, "sqlite") as registry:
        published = registry.publisher.post("/tasks/demo.greet/versions", json=older_greet())
        assert published.status_code == 201, published.text
        yield CurlGateway(registry.url, registry.store.create_token("interop", ["send"]))


@pytest.fixture(params=[*sorted(PRODUCERS), "python-generated-stub", "node-client", "curl-gateway"])
def producer(request: pytest.FixtureRequest) -> Producer:
    """Each producer; those needing set-up (codegen, a Node build) get it here."""
    made: Producer
    if request.param == "python-generated-stub":
        made = GeneratedStub(request.getfixturevalue("stubs"))
    elif request.param == "node-client":
        made = NodeClient(request.getfixturevalue("node_client"))
    elif request.param == "curl-gateway":
        made = request.getfixturevalue("gateway")
    else:
        made = PRODUCERS[request.param]
    return made


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


def scrape(metrics_port: int) -> str:
    """The worker's metrics page, waiting for the endpoint, which comes up as it starts."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def counter(metrics_port: int, **labels: str) -> float:
    """The value of `taskschema_messages_total` with `labels`, scraped from the worker."""
    for family in text_string_to_metric_families(scrape(metrics_port)):
        for sample in family.samples:
            if sample.name == "taskschema_messages_total" and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_worker_counts_messages_for_prometheus(
    setup: Setup, worker: Worker, client: Celery, metrics_port: int
) -> None:
    accepted = {"task": "demo.greet", "outcome": "accepted", "reason": ""}
    refused = {"task": "demo.greet", "outcome": "rejected", "reason": "contract-violation"}
    before = counter(metrics_port, **accepted), counter(metrics_port, **refused)
    ids = [RawV2().send(setup, VALID_KWARGS) for _ in range(3)]
    ids.append(RawV2().send(setup, INVALID_KWARGS))
    for id_ in ids:
        AsyncResult(id_, app=client).get(timeout=RESULT_TIMEOUT, propagate=False)
    after = counter(metrics_port, **accepted), counter(metrics_port, **refused)
    assert (after[0] - before[0], after[1] - before[1]) == (3, 1)


def test_metrics_count_invented_task_names_in_one_series_and_pool_refusals(
    setup: Setup, worker: Worker, client: Celery, metrics_port: int
) -> None:
    """A producer inventing task names must not create a series per name; a wrong return,
    refused in the pool, is counted as failed."""
    unknown = {"task": "<unknown>", "outcome": "rejected", "reason": "no-contract"}
    failed = {"task": "demo.broken_return", "outcome": "failed", "reason": "return-violation"}
    before = counter(metrics_port, **unknown), counter(metrics_port, **failed)
    invented = [f"hostile.t{uuid.uuid4().hex[:12]}" for _ in range(5)]
    ids = []
    with setup.connection() as conn:
        for name in invented:
            ids.append(str(uuid.uuid4()))
            publish_raw(conn, setup.queue, b"[[], {}, {}]", {"task": name, "id": ids[-1]})
    ids.append(client.send_task("demo.broken_return", args=[3]).id)
    for id_ in ids:
        AsyncResult(id_, app=client).get(timeout=RESULT_TIMEOUT, propagate=False)
    deadline = time.monotonic() + RESULT_TIMEOUT
    # The pool stores the FAILURE before the main process hears of it and counts it.
    while counter(metrics_port, **failed) == before[1] and time.monotonic() < deadline:
        time.sleep(0.1)
    after = counter(metrics_port, **unknown), counter(metrics_port, **failed)
    assert (after[0] - before[0], after[1] - before[1]) == (5, 1)
    page = scrape(metrics_port)
    assert not [name for name in invented if name in page]
