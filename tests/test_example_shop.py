"""The example service in examples/shop, as the README quickstart walks through it (the
README's examples that send to it are run by test_readme.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from workers import REDIS_HOST, REDIS_PORT, Setup, Worker, require_services

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"
BIN = Path(sys.executable).parent
# Databases of their own, so the shop's fixed queue names meet no other test's messages.
BROKER_DB, BACKEND_DB = 8, 9
ENV = {
    "SHOP_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
    "SHOP_RESULT_BACKEND": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BACKEND_DB}",
}


def run(
    *command: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=SHOP,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_generated_code_is_up_to_date() -> None:
    """The committed shop_tasks/ is what codegen makes of schemas/shop today."""
    checked = run(BIN / "taskschema", "codegen", "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_service_passes_mypy_strict_and_ruff() -> None:
    typed = run(BIN / "mypy", "--strict", "shop", "shop_tasks")
    assert typed.returncode == 0, typed.stdout + typed.stderr
    linted = run(BIN / "ruff", "check", ".")
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.fixture(scope="module")
def shop_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    require_services("redis")
    for db in (BROKER_DB, BACKEND_DB):
        redis.Redis(REDIS_HOST, REDIS_PORT, db=db).flushdb()
    worker = Worker(
        Setup("redis"),
        tmp_path_factory.mktemp("shop-logs"),
        ENV,
        name="shop",
        app="shop.worker",
        cwd=SHOP,
        queues=("orders", "notifications"),
    )
    try:
        yield worker.start()
    finally:
        worker.stop()


def test_producer_gets_models_back_from_the_worker(shop_worker: Worker) -> None:
    produced = run(BIN / "python", "-m", "shop.produce", env=ENV)
    assert produced.returncode == 0, produced.stderr + shop_worker.read_log()[-3000:]
    lines = produced.stdout.splitlines()
    assert lines[0].startswith("process_order -> Receipt: "), lines
    assert '"status":"paid"' in lines[0]
    assert '"total":{"amount":25.0,"currency":"EUR"}' in lines[0]
    assert lines[1].startswith("cancel_order  -> CancellationResult: "), lines
    assert lines[2].startswith("send_email    -> "), lines
    assert lines[3].startswith("refused       -> "), lines
    assert lines[4].strip().startswith("/priority: "), lines  # each violation, with its path
    assert shop_worker.alive
