"""Task gateway send throughput against Flower's `POST /api/task/async-apply/{task}`.

Both are single server processes on loopback, publishing the same task (bench.small,
the small reference payload) to the same Redis broker and queue, under the same load:
CONCURRENCY keep-alive connections sending REQUESTS requests in a closed loop from a
raw asyncio HTTP client (cheap enough that the servers, not the client, are measured).
Both authenticate every request (the gateway a `send` token, Flower basic auth), neither
writes access logs, and neither reads a result backend on send (Flower's app has none,
so it skips its state lookup). The gateway additionally validates every call against
the contract. Each run's queue length is checked against the 2xx count, so both really
published every message. Rounds alternate; the best of each is reported, with each
server's CPU time per send (from /proc), which other load on the machine moves less than
the rates.

This module is also the Celery app Flower serves (`celery -A tests.bench.bench_gateway
flower`): async-apply needs the task in the app's registry.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from celery import Celery

from tests.helpers import free_port

from .bench_decoder import BROKER, PAYLOADS, contract_document

QUEUE = os.environ.get("BENCH_GATEWAY_QUEUE", "bench.gateway")
REQUESTS = int(os.environ.get("BENCH_GATEWAY_REQUESTS", "3000"))
CONCURRENCY = int(os.environ.get("BENCH_GATEWAY_CONCURRENCY", "32"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TARGET_RATIO = 2.0
ROOT = Path(__file__).resolve().parents[2]
FLOWER_USER, FLOWER_PASSWORD = "bench", "bench-secret"
GATEWAY_PATH = "/tasks/bench.small/send"
FLOWER_PATH = "/api/task/async-apply/bench.small"

# The app Flower serves: bench.small registered, the bench broker, no result backend.
app = Celery("bench_gateway", broker=BROKER, set_as_current=False)
app.conf.update(task_default_queue=QUEUE, task_serializer="json", accept_content=["json"])


@app.task(name="bench.small")
def small(name: str, count: int, flag: bool) -> None:
    """Never runs here: the benchmark only publishes."""


# -- a load generator ------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _closed_loop(port: int, request: bytes, total: int, concurrency: int) -> Counter[int]:
    remaining = total
    statuses: Counter[int] = Counter()

    async def connection() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                writer.write(request)
                statuses[await _read_response(reader)] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return statuses


def load(port: int, request: bytes, total: int) -> tuple[float, Counter[int]]:
    """Requests per second over `total` requests, and the statuses answered."""
    start = time.perf_counter()
    statuses = asyncio.run(_closed_loop(port, request, total, CONCURRENCY))
    return total / (time.perf_counter() - start), statuses


def http_request(path: str, body: bytes, authorization: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# -- the two servers -------------------------------------------------------------------


@contextmanager
def server(command: list[str], env: dict[str, str], ready_url: str) -> Iterator[int]:
    """Run `command` until the block ends, once `ready_url` answers; yields its pid."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while not _answers(ready_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{command[:4]} did not start:\n{log.read().decode()}")
                time.sleep(0.2)
            yield process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.TransportError:
        return False
    return True


@contextmanager
def gateway(workdir: Path) -> Iterator[tuple[int, str, int]]:
    """The registry as users run it (uvicorn, which picks uvloop and httptools from
    uvicorn[standard]; one process, no access log) with bench.small published; yields
    its port, a `send` token and its pid."""
    from registry_service._db import create_db_engine, migrate
    from registry_service._store import Store

    database = f"sqlite:///{workdir / 'registry.db'}"
    engine = create_db_engine(database)
    migrate(engine)
    store = Store(engine)
    publisher, sender = (store.create_token("bench", [scope]) for scope in ("publish", "send"))
    engine.dispose()
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "registry_service:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
               "--log-level", "warning"]  # fmt: skip
    env = {"TASKSCHEMA_DATABASE_URL": database, "TASKSCHEMA_BROKER_URL": BROKER}
    with server(command, env, f"http://127.0.0.1:{port}/healthz") as pid:
        document = {**contract_document("small"), "options": {"queue": QUEUE}}
        published = httpx.post(
            f"http://127.0.0.1:{port}/tasks/bench.small/versions",
            json=document,
            headers={"Authorization": f"Bearer {publisher}"},
        )
        assert published.status_code == 201, published.text
        yield port, sender, pid


@contextmanager
def flower() -> Iterator[tuple[int, int]]:
    """Flower (one process, basic auth, no access log) serving this module's app; yields
    its port and pid."""
    port = free_port()
    command = [sys.executable, "-m", "celery", "-A", "tests.bench.bench_gateway", "flower",
               f"--port={port}", "--address=127.0.0.1",
               f"--basic-auth={FLOWER_USER}:{FLOWER_PASSWORD}", "--logging=warning",
               "--enable_events=False"]  # fmt: skip
    with server(command, {}, f"http://127.0.0.1:{port}/healthcheck") as pid:
        yield port, pid


# -- the measurement -------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far; 0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(port: int, pid: int, request: bytes, accepted: int) -> tuple[float, float]:
    """Requests per second and the server's CPU microseconds per request, after checking
    every request published one message."""
    import redis

    broker = redis.Redis.from_url(BROKER)
    broker.delete(QUEUE)
    cpu_before = cpu_seconds(pid)
    rate, statuses = load(port, request, REQUESTS)
    cpu_per_request = (cpu_seconds(pid) - cpu_before) / REQUESTS * 1e6
    assert statuses == Counter({accepted: REQUESTS}), statuses
    published = broker.llen(QUEUE)
    assert published == REQUESTS, f"{published} messages on the queue for {REQUESTS} requests"
    broker.delete(QUEUE)
    return rate, cpu_per_request


def main() -> None:
    body = json.dumps({"kwargs": PAYLOADS["small"]["payload"]}).encode()
    basic = base64.b64encode(f"{FLOWER_USER}:{FLOWER_PASSWORD}".encode()).decode()
    rates: dict[str, list[float]] = {"gateway": [], "flower": []}
    cpu: dict[str, list[float]] = {"gateway": [], "flower": []}
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory() as workdir,
        gateway(Path(workdir)) as (ours, token, our_pid),
        flower() as (theirs, their_pid),
    ):
        requests = {
            "gateway": (ours, our_pid, http_request(GATEWAY_PATH, body, f"Bearer {token}"), 202),
            "flower": (theirs, their_pid, http_request(FLOWER_PATH, body, f"Basic {basic}"), 200),
        }
        for port, _, request, _ in requests.values():  # warm both up
            load(port, request, 200)
        for _ in range(ROUNDS):  # alternate, so drift on the machine hits both alike
            for name, (port, pid, request, accepted) in requests.items():
                rate, cpu_per_request = run(port, pid, request, accepted)
                rates[name].append(rate)
                cpu[name].append(cpu_per_request)
    ours_best, theirs_best = max(rates["gateway"]), max(rates["flower"])
    ratio = ours_best / theirs_best
    print(f"task gateway vs Flower async-apply on Redis, {REQUESTS} sends, "
          f"{CONCURRENCY} connections (best of {ROUNDS}; load average "
          f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after)")  # fmt: skip
    print(f"  Flower {_flower_version()} async-apply  {theirs_best:8.0f} sends/s"
          f"  {min(cpu['flower']):6.0f} µs CPU/send")  # fmt: skip
    print(f"  taskschema gateway         {ours_best:8.0f} sends/s"
          f"  {min(cpu['gateway']):6.0f} µs CPU/send  (validated)")  # fmt: skip
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"  ratio {ratio:.2f} (target >= {TARGET_RATIO}) -> {verdict}")


def _flower_version() -> str:
    from importlib.metadata import version

    return version("flower")


if __name__ == "__main__":
    main()
