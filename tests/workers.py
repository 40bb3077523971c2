"""Real Celery workers for the integration tests: brokers, worker subprocesses, raw messages.

A `Worker` runs `celery -A worker_app worker -P prefork -c 2` in its own process group
(so the whole group can be killed at once), logging to a file, configured by environment
(see worker_app.py). `DeadLetters` reads a dead-letter queue back; `publish_raw` and
friends put hand-made task messages on a queue, including ones kombu would never produce.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import amqp
import pytest
import redis
from celery import Celery
from kombu import Connection, Producer, Queue

from conftest import service_missing

TESTS = Path(__file__).resolve().parent
READY_TIMEOUT = 30.0
RESULT_TIMEOUT = 20.0

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Databases 0 and 1 are the defaults anyone else uses; keep the tests apart from them.
REDIS_BROKER_DB, RESULT_BACKEND_DB = 5, 6
REDIS_BROKER_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_BROKER_DB}"
RESULT_BACKEND_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{RESULT_BACKEND_DB}"
BROKER_URLS = {"amqp": AMQP_URL, "redis": REDIS_BROKER_URL}
BROKERS = list(BROKER_URLS)


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def require_services(broker: str) -> None:
    """Skip (or fail under CI=true) unless `broker` and the Redis result backend answer."""
    try:
        redis.Redis(REDIS_HOST, REDIS_PORT, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_HOST}:{REDIS_PORT}", exc)
    if broker == "amqp":
        try:
            with Connection(AMQP_URL, connect_timeout=3) as conn:
                conn.ensure_connection(max_retries=1)
        except Exception as exc:
            service_missing(f"RabbitMQ at {AMQP_URL}", exc)


@dataclass
class Setup:
    """Where a worker and the test talk: a broker, a task queue and a dead-letter queue."""

    broker: str
    queue: str = field(default_factory=lambda: unique("taskschema.test"))
    dead_letter_queue: str = field(default_factory=lambda: unique("taskschema.dead_letter"))

    @property
    def broker_url(self) -> str:
        return BROKER_URLS[self.broker]

    def connection(self) -> Connection:
        return Connection(self.broker_url, connect_timeout=5)

    def client(self) -> Celery:
        """A producer-side app: sends by task name, reads results from the backend."""
        app = Celery("taskschema-tests", broker=self.broker_url, backend=RESULT_BACKEND_URL)
        app.conf.update(
            task_default_queue=self.queue,
            task_serializer="json",
            result_serializer="json",
            accept_content=["json"],
            broker_transport_options={"visibility_timeout": 5},
            broker_connection_retry=False,
        )
        return app

    def purge(self) -> None:
        """Declare the task and dead-letter queues, empty."""
        with self.connection() as conn:
            for name in (self.queue, self.dead_letter_queue):
                bound = Queue(name, durable=True)(conn.default_channel)
                bound.declare()
                bound.purge()

    def waiting(self) -> int:
        """How many messages wait in the task queue (not counting unacknowledged ones)."""
        with self.connection() as conn:
            declared = Queue(self.queue, durable=True)(conn.default_channel).queue_declare(
                passive=True
            )
            return int(declared.message_count)

    def delete(self) -> None:
        """Remove both queues, and on Redis every key kombu keeps for them."""
        names = (self.queue, self.dead_letter_queue)
        if self.broker == "redis":
            # kombu's Redis queue_delete only drops queues this connection bound itself.
            client = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_BROKER_DB)
            for name in names:
                for key in client.scan_iter(match=f"*{name}*"):
                    client.delete(key)
            return
        with self.connection() as conn:
            for name in names:
                conn.default_channel.queue_delete(name)


class Worker:
    """One `celery worker` subprocess (prefork, concurrency 2) in its own process group."""

    def __init__(
        self,
        setup: Setup,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        name: str = "w",
        app: str = "worker_app",
        cwd: Path = TESTS,
        queues: tuple[str, ...] = (),
    ) -> None:
        self.setup = setup
        self.app = app
        self.cwd = cwd
        self.queues = queues or (setup.queue,)
        self.name = unique(name)
        self.log = log_dir / f"{self.name}.log"
        self.env = {
            **os.environ,
            "TEST_BROKER_URL": setup.broker_url,
            "TEST_RESULT_BACKEND": RESULT_BACKEND_URL,
            "TEST_QUEUE": setup.queue,
            "TEST_DEAD_LETTER_QUEUE": setup.dead_letter_queue,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app,
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
            "-Q",
            ",".join(self.queues),
            "-n",
            f"{self.name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, pool children included
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while " ready." not in self.read_log():
            if self.process.poll() is not None:
                pytest.fail(
                    f"worker {self.name} exited with {self.process.returncode} before it was "
                    f"ready:\n{self.read_log()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    f"worker {self.name} not ready after {READY_TIMEOUT}s:\n{self.read_log()}",
                    pytrace=False,
                )
            time.sleep(0.1)
        return self

    def read_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group: main process and pool children, no cleanup."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL the group if it is not gone in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        # Pool children left behind by a crashed main process go too.
        self._signal_group(signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)


@contextmanager
def running_worker(
    setup: Setup,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    name: str = "w",
    app: str = "worker_app",
) -> Iterator[Worker]:
    worker = Worker(setup, log_dir, env, name, app)
    try:
        yield worker.start()
    finally:
        worker.stop()


# -- raw messages -------------------------------------------------------------------


def publish_raw(
    conn: Connection,
    queue: str,
    body: bytes,
    headers: Mapping[str, Any],
    content_type: str = "application/json",
    content_encoding: str = "utf-8",
) -> None:
    """Publish `body` as is (no serializer) to `queue` through the default exchange."""
    Producer(conn).publish(
        body,
        routing_key=queue,
        headers=dict(headers),
        content_type=content_type,
        content_encoding=content_encoding,
        serializer=None,
        retry=True,
    )


def publish_without_content_type(setup: Setup, body: bytes, headers: Mapping[str, Any]) -> None:
    """A message with no content type at all, which kombu's Producer never sends."""
    if setup.broker == "amqp":
        conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
        conn.connect()
        try:
            channel = conn.channel()
            channel.basic_publish(
                amqp.Message(body, application_headers=dict(headers), delivery_mode=2),
                exchange="",
                routing_key=setup.queue,
            )
        finally:
            conn.close()
        return
    envelope = redis_envelope(setup, body, headers)
    del envelope["content-type"]
    client = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_BROKER_DB)
    client.lpush(setup.queue, json.dumps(envelope))


def redis_envelope(setup: Setup, body: bytes, headers: Mapping[str, Any]) -> dict[str, Any]:
    """kombu's Redis envelope for `body`, copied from one kombu itself wrote.

    Publishes a throwaway message to a scratch list, reads it back with LRANGE and swaps
    in `body` and `headers`, so the format (base64 body, delivery_info, delivery_tag,
    ...) is exactly the one this kombu version uses.
    """
    scratch = unique("taskschema.scratch")
    client = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_BROKER_DB)
    with Connection(REDIS_BROKER_URL) as conn:
        Producer(conn).publish(
            b"{}",
            routing_key=scratch,
            headers={},
            content_type="application/json",
            content_encoding="utf-8",
            serializer=None,
            declare=[Queue(scratch)],
        )
    raw = client.lrange(scratch, 0, -1)
    client.delete(scratch)
    assert len(raw) == 1, raw
    envelope: dict[str, Any] = json.loads(raw[0])
    assert envelope["properties"]["body_encoding"] == "base64", envelope
    envelope["body"] = base64.b64encode(body).decode()
    envelope["headers"] = dict(headers)
    envelope["properties"]["delivery_tag"] = str(uuid.uuid4())
    envelope["properties"]["delivery_info"]["routing_key"] = setup.queue
    return envelope


# -- the dead-letter queue ----------------------------------------------------------


@dataclass
class DeadLetter:
    body: bytes
    headers: dict[str, Any]
    content_type: str | None


def _case_of(headers: Mapping[str, Any], body: Any) -> str:
    """The test case a dead-letter copy belongs to: its `x-test-case` header, else the
    task id (from the headers, or from a protocol 1 body), for producers that cannot
    add headers of their own."""
    if headers.get("x-test-case") is not None:
        return str(headers["x-test-case"])
    if headers.get("id") is not None:
        return str(headers["id"])
    with suppress(ValueError, TypeError, KeyError):
        return str(json.loads(body)["id"])
    return "None"


class DeadLetters:
    """Reads a dead-letter queue, keeping every copy by the test case that caused it.

    Raw messages the tests publish carry an `x-test-case` header, which the consumer
    copies into its dead-letter copy; copies of other messages are found by task id.
    """

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.seen: dict[str, list[DeadLetter]] = {}

    def _drain(self, wait: float) -> None:
        """Take every copy now in the queue, polling up to `wait` seconds for the first."""
        deadline = time.monotonic() + wait
        with self.setup.connection() as conn:
            queue = Queue(self.setup.dead_letter_queue, durable=True)(conn.default_channel)
            got = False
            while True:
                message = queue.get(no_ack=False)  # basic_get: the raw message, not decoded
                if message is None:
                    if got or time.monotonic() >= deadline:
                        return
                    time.sleep(0.05)
                    continue
                got = True
                headers = dict(message.headers or {})
                body = message.body
                self.seen.setdefault(_case_of(headers, body), []).append(
                    DeadLetter(
                        body if isinstance(body, bytes) else str(body).encode(),
                        headers,
                        message.content_type,
                    )
                )
                message.ack()

    def wait_for(self, case: str, timeout: float = RESULT_TIMEOUT) -> DeadLetter:
        deadline = time.monotonic() + timeout
        while case not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no dead-letter copy of {case} in {self.setup.dead_letter_queue}")
            self._drain(min(remaining, 1.0))
        (letter, *others) = self.seen[case]
        assert not others, f"{case} was dead-lettered {len(others) + 1} times"
        return letter

    def assert_none(self, case: str, wait: float = 0.5) -> None:
        self._drain(wait)
        assert case not in self.seen, f"{case} was dead-lettered: {self.seen[case]}"
