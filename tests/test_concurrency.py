"""Several registry processes on one database: no lost or duplicate versions."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from registry_service._db import create_db_engine, migrate
from registry_service._store import Store

from conftest import fresh_postgres_database
from helpers import make_contract

REPLICAS = 2
DISTINCT = 120
REPEATS = 3  # every distinct contract is also published again, concurrently


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def uvicorn_process(database_url: str, log: Path) -> Iterator[str]:
    """A registry replica: its own `uvicorn` process, migrating the database on start."""
    port = _free_port()
    env = {**os.environ, "TASKSCHEMA_DATABASE_URL": database_url}
    command = [
        sys.executable, "-m", "uvicorn", "registry_service:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"replica exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"replica did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
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
        # Both replicas start on an empty database at once and race to migrate it.
        replicas = [
            stack.enter_context(uvicorn_process(database_url, tmp_path / f"replica{i}.log"))
            for i in range(REPLICAS)
        ]
        engine = create_db_engine(database_url)
        stack.callback(engine.dispose)
        migrate(engine)
        token = Store(engine).create_token("load", ["publish"])

        task = "load.concurrent"
        documents = [make_contract(task, description=f"variant {i}") for i in range(DISTINCT)]
        jobs = [(i % REPLICAS, i % DISTINCT) for i in range(DISTINCT * REPEATS)]
        clients = [
            stack.enter_context(
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            )
            for url in replicas
        ]

        def publish(job: tuple[int, int]) -> tuple[int, int, dict[str, object]]:
            replica, index = job
            response = clients[replica].post(f"/tasks/{task}/versions", json=documents[index])
            return index, response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=24) as pool:
            results = list(pool.map(publish, jobs))

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
        listed = clients[0].get(f"/tasks/{task}/versions").json()
        assert [v["version"] for v in listed] == list(range(1, DISTINCT + 1))
        assert len({v["fingerprint"] for v in listed}) == DISTINCT
