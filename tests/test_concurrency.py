"""Several registry processes on one database: no lost or duplicate versions."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from registry_service._db import create_db_engine, migrate
from registry_service._store import Store

from conftest import fresh_postgres_database
from helpers import free_port, make_contract

REPLICAS = 2
DISTINCT = 120
REPEATS = 3  # every distinct contract is also published again, concurrently
IN_FLIGHT = 180  # publishes sent at once, across both replicas
MIN_IN_FLIGHT = 120  # the issue asks for 100+ concurrent publishes; measured, not assumed


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def wait_until_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(
                    f"replica exited with {self.process.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"replica did not start:\n{self.log.read_text()}")
            time.sleep(0.05)


@contextmanager
def uvicorn_process(database_url: str, log: Path) -> Iterator[Replica]:
    """A registry replica: its own `uvicorn` process, started (not yet waited on), which
    migrates the database on start."""
    port = free_port()
    env = {**os.environ, "TASKSCHEMA_DATABASE_URL": database_url}
    command = [
        sys.executable, "-m", "uvicorn", "registry_service:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield Replica(process, f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_concurrent_publishes_through_two_replicas_give_contiguous_unique_versions(
    backend: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        database_url = stack.enter_context(database(backend, tmp_path))
        # Both replicas are started before either is waited on: they race to migrate
        # the empty database (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE).
        replicas = [
            stack.enter_context(uvicorn_process(database_url, tmp_path / f"replica{i}.log"))
            for i in range(REPLICAS)
        ]
        for replica in replicas:
            replica.wait_until_serving()
        engine = create_db_engine(database_url)
        stack.callback(engine.dispose)
        migrate(engine)
        token = Store(engine).create_token("load", ["publish"])

        task = "load.concurrent"
        documents = [make_contract(task, description=f"variant {i}") for i in range(DISTINCT)]
        jobs = [(i % REPLICAS, i % DISTINCT) for i in range(DISTINCT * REPEATS)]
        results, peak = asyncio.run(
            _publish_all([replica.url for replica in replicas], token, task, documents, jobs)
        )
        # The publishes really were concurrent at the servers, not queued in the client.
        assert peak >= MIN_IN_FLIGHT, f"at most {peak} publishes were in flight at once"

        assert all(status in (200, 201) for _, status, _ in results), results
        created = [(index, body["version"]) for index, status, body in results if status == 201]
        # Exactly one publish of each distinct contract created a version.
        assert sorted(index for index, _ in created) == list(range(DISTINCT))
        # Versions are 1..N: contiguous, none duplicated, none lost.
        assert sorted(version for _, version in created) == list(range(1, DISTINCT + 1))
        # Every publish of a document, created or not, answered that document's one version.
        version_of = dict(created)
        assert all(body["version"] == version_of[index] for index, _, body in results)
        assert Counter(status for _, status, _ in results) == {
            201: DISTINCT,
            200: DISTINCT * (REPEATS - 1),
        }
        listed = httpx.get(f"{replicas[0].url}/tasks/{task}/versions", timeout=30).json()
        assert [v["version"] for v in listed] == list(range(1, DISTINCT + 1))
        assert len({v["fingerprint"] for v in listed}) == DISTINCT


async def _publish_all(
    urls: list[str],
    token: str,
    task: str,
    documents: list[dict[str, object]],
    jobs: list[tuple[int, int]],
) -> tuple[list[tuple[int, int, dict[str, object]]], int]:
    """Every job's (document index, status, body), IN_FLIGHT at a time; and the most
    publishes that were on the wire at once: sent in full, their answer not yet read."""
    # httpx queues requests beyond its pool (by default 100 connections, 20 kept alive):
    # give each replica's client room for every publish in flight.
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    headers = {"Authorization": f"Bearer {token}"}
    slots = asyncio.Semaphore(IN_FLIGHT)
    awaiting = peak = 0

    async def trace(event: str, _info: dict[str, object]) -> None:  # httpcore's trace hook
        nonlocal awaiting, peak
        if event == "http11.send_request_body.complete":
            awaiting += 1
            peak = max(peak, awaiting)
        elif event.startswith("http11.receive_response_headers.") and not event.endswith(
            ".started"
        ):
            awaiting -= 1

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120)
            )
            for url in urls
        ]

        async def publish(job: tuple[int, int]) -> tuple[int, int, dict[str, object]]:
            replica, index = job
            async with slots:
                response = await clients[replica].post(
                    f"/tasks/{task}/versions", json=documents[index], extensions={"trace": trace}
                )
            return index, response.status_code, response.json()

        results = await asyncio.gather(*(publish(job) for job in jobs))
    return list(results), peak
