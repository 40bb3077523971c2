"""The example service in examples/shop, as the README quickstart walks through it."""

from __future__ import annotations

import json
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


README = SHOP.parents[1] / "README.md"
RUN_MARKER = "<!-- run by tests/test_example_shop.py -->"


def readme_snippets() -> list[str]:
    """The shell blocks in README.md marked as run by this module."""
    text = README.read_text()
    snippets = []
    for part in text.split(RUN_MARKER)[1:]:
        block = part.split("```sh\n", 1)[1].split("```", 1)[0]
        snippets.append(block)
    return snippets


def test_readme_raw_redis_message_is_refused_with_its_violation(shop_worker: Worker) -> None:
    """The README's hand-made message, pasted as is (on this test's Redis databases)."""
    (snippet,) = readme_snippets()
    script = snippet.replace("-n 0 ", f"-n {BROKER_DB} ").replace("-n 1 ", f"-n {BACKEND_DB} ")
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    stored = json.loads(ran.stdout.splitlines()[-1])
    assert stored["status"] == "FAILURE", stored
    (error,) = stored["result"]["exc_message"]
    assert [v["path"] for v in error["violations"]] == ["/order_id"]
    assert shop_worker.alive
