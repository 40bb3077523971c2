"""The `taskschema` command line, run as a real process against a live registry."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from workers import (
    REDIS_BROKER_URL,
    REDIS_HOST,
    REDIS_PORT,
    RESULT_BACKEND_URL,
    Setup,
    require_services,
    running_worker,
)

from registry_service._db import create_db_engine, migrate
from registry_service._store import Store
from taskschema import TaskContract

from conftest import EXAMPLES, ROOT, Registry
from helpers import free_port, make_contract

TASKSCHEMA = shutil.which("taskschema", path=str(Path(sys.executable).parent))


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    assert TASKSCHEMA, "the taskschema console script is not installed in this environment"
    return subprocess.run(
        [TASKSCHEMA, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def token_of(client: object) -> str:
    return client.headers["Authorization"].removeprefix("Bearer ")  # type: ignore[attr-defined]


def write(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    return path


def test_publish_a_folder_then_again_reports_created_then_unchanged(
    sqlite_registry: Registry, tmp_path: Path, task_name: str
) -> None:
    namespace = task_name.split(".")[0]
    write(tmp_path / "a" / "one.json", make_contract(f"{namespace}.one"))
    write(tmp_path / "b.json", make_contract(f"{namespace}.two"))
    write(tmp_path / "a" / "shared.schema.json", {"type": "object"})  # not a contract
    args = ("publish", str(tmp_path), "--registry", sqlite_registry.url)
    first = run(*args, "--token", token_of(sqlite_registry.publisher))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].startswith(f"{namespace}.one: created v1 (id ")
    assert first.stdout.splitlines()[1].startswith(f"{namespace}.two: created v1 (id ")
    second = run(*args, env={"TASKSCHEMA_TOKEN": token_of(sqlite_registry.publisher)})
    assert second.returncode == 0
    assert f"{namespace}.one: unchanged v1" in second.stdout


def test_publish_reports_each_refusal_with_file_and_path_and_exits_1(
    sqlite_registry: Registry, tmp_path: Path, task_name: str
) -> None:
    good = write(tmp_path / "good.json", make_contract(task_name))
    bad_document = make_contract(task_name + "_bad")
    bad_document["params"]["properties"]["x"]["$ref"] = "https://example.com/x.json"
    bad = write(tmp_path / "bad.json", bad_document)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = run(
        "publish", str(good), str(bad), str(broken),
        "--registry", sqlite_registry.url, "--token", token_of(sqlite_registry.publisher),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{task_name}: created v1" in result.stdout
    assert f"{bad}: refused" in result.stdout
    assert f"{bad}:/params/properties/x/$ref: remote reference" in result.stdout
    assert f"{broken}: refused: invalid JSON" in result.stdout
    assert "2 of 3 refused" in result.stderr


def test_publish_reports_what_the_registry_refuses(
    sqlite_registry: Registry, tmp_path: Path, task_name: str
) -> None:
    file = write(tmp_path / "c.json", make_contract(task_name))
    result = run("publish", str(file), "--registry", sqlite_registry.url, "--token", "tsk_wrong")
    assert result.returncode == 1
    assert f"{file}: refused (invalid_token)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("publish", "/no/such/file.json"), "no such file or folder"),
        (("publish", "{tmp}"), "no contract files"),
        (
            ("publish", "{examples}", "--registry", "http://127.0.0.1:9"),
            "cannot reach the registry",
        ),
        (("get", "a.b", "--version", "newest"), "must be a number or 'latest'"),
    ],
)
def test_usage_and_input_errors_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    formatted = [arg.format(tmp=tmp_path, examples=EXAMPLES) for arg in args]
    result = run(*formatted)
    assert result.returncode == 2
    assert message in result.stderr


def test_get_prints_a_contract(sqlite_registry: Registry, task_name: str) -> None:
    sqlite_registry.publisher.post(f"/tasks/{task_name}/versions", json=make_contract(task_name))
    sqlite_registry.publisher.post(
        f"/tasks/{task_name}/versions", json=make_contract(task_name, description="Second.")
    )
    latest = run("get", task_name, "--registry", sqlite_registry.url)
    assert latest.returncode == 0
    assert json.loads(latest.stdout) == make_contract(task_name, description="Second.")
    first = run("get", task_name, "--version", "1", "--registry", sqlite_registry.url)
    assert json.loads(first.stdout) == make_contract(task_name)
    missing = run("get", task_name + "x", "--registry", sqlite_registry.url)
    assert missing.returncode == 1
    assert "no task named" in missing.stderr


def test_token_create_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    database = tmp_path / "tokens.db"
    url = f"sqlite:///{database}"
    result = run("token", "create", "--scope", "publish", "--scope", "admin", "--name", "ci",
                 "--database-url", url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("tsk_")
    assert len(token) > 40
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name, token_hash, scopes FROM tokens").fetchall()
    assert rows == [("ci", hashlib.sha256(token.encode()).hexdigest(), "admin publish")]
    for file in tmp_path.iterdir():
        assert token.encode() not in file.read_bytes()
    listed = run("token", "list", env={"TASKSCHEMA_DATABASE_URL": url})
    assert "ci\tadmin,publish\tactive" in listed.stdout
    assert token not in listed.stdout
    assert run("token", "revoke", "1", "--database-url", url).returncode == 0
    assert "revoked" in run("token", "list", "--database-url", url).stdout
    assert run("token", "revoke", "1", "--database-url", url).returncode == 1


def test_token_create_refuses_an_unknown_scope(tmp_path: Path) -> None:
    result = run(
        "token", "create", "--scope", "root", "--database-url", f"sqlite:///{tmp_path / 't.db'}"
    )
    assert result.returncode == 2
    assert "unknown scope root" in result.stderr


@dataclass
class Served:
    url: str
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def serving(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`taskschema serve ARGS` as a real process in `cwd`, once it answers /healthz."""
    assert TASKSCHEMA, "the taskschema console script is not installed in this environment"
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}", cwd / f"serve-{port}.log")
    with served.log.open("wb") as log:
        process = subprocess.Popen(
            [TASKSCHEMA, "serve", "--port", str(port), *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, f"serve exited:\n{served.output}"
            assert time.monotonic() < deadline, f"serve did not start:\n{served.output}"
            time.sleep(0.2)
        yield served
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_serve_publishes_the_examples_and_prints_the_docs_url(tmp_path: Path) -> None:
    with serving("--publish", str(EXAMPLES.parent), cwd=tmp_path) as served:
        page = httpx.get(f"{served.url}/tasks", timeout=5).json()
        expected = sorted(json.loads(p.read_text())["task"] for p in EXAMPLES.rglob("*.json"))
        assert sorted(t["task"] for t in page["tasks"]) == expected
    assert f"API docs: {served.url}/docs" in served.output
    assert re.search(r"^orders\.process_order: created v1 \(id \d+\)$", served.output, re.M)
    database = tmp_path / "taskschema.db"  # the embedded SQLite default
    with sqlite3.connect(database) as plain:  # WAL is kept in the file itself
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_serve_reports_a_seed_contract_the_database_refuses_and_still_serves(
    tmp_path: Path,
) -> None:
    # A ./taskschema.db kept from an earlier run holds a version the seed now breaks.
    engine = create_db_engine(f"sqlite:///{tmp_path / 'taskschema.db'}")
    migrate(engine)
    Store(engine).publish(TaskContract(make_contract("seed.changed")))
    engine.dispose()
    folder = tmp_path / "contracts"
    changed = write(
        folder / "changed.json",
        make_contract("seed.changed", properties={"x": {"type": "integer", "minimum": 1}}),
    )
    write(folder / "fresh.json", make_contract("seed.fresh"))
    with serving("--publish", str(folder), cwd=tmp_path) as served:
        versions = httpx.get(f"{served.url}/tasks/seed.changed/versions", timeout=5).json()
        assert [v["version"] for v in versions] == [1]
        assert httpx.get(f"{served.url}/tasks/seed.fresh", timeout=5).status_code == 200
    output = served.output
    assert "Traceback" not in output
    # The refusal as `taskschema publish` prints it: file, error code, every violation.
    assert f"{changed}: refused (incompatible): seed.changed would break BACKWARD" in output
    assert f"  {changed}:/params/properties/x/minimum: limit-added: minimum 1" in output
    assert "  params backward: producers still on the older contract" in output
    assert "seed.fresh: created v1" in output
    assert "1 of 2 refused; serving without them" in output
    assert f"API docs: {served.url}/docs" in output


# -- serve with the task gateway ---------------------------------------------------------

ADA = {"name": "Ada", "born": "1990-01-01T00:00:00Z"}


@pytest.fixture
def redis_queue() -> Iterator[Setup]:
    """A Redis queue of this test's own (broker db 5, results db 6), removed afterwards."""
    require_services("redis")
    setup = Setup("redis")
    setup.purge()
    yield setup
    setup.delete()


def _greet_contracts(folder: Path, queue: str) -> Path:
    document = json.loads((ROOT / "tests" / "contracts" / "demo.greet.json").read_text())
    document["options"]["queue"] = queue
    write(folder / "demo.greet.json", document)
    return folder


def _send_token(database_url: str) -> str:
    created = run("token", "create", "--scope", "send", "--database-url", database_url)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def _send(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/tasks/demo.greet/send",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def test_serve_with_broker_and_result_backend_options_runs_a_sent_task(
    tmp_path: Path, redis_queue: Setup
) -> None:
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    contracts = _greet_contracts(tmp_path / "contracts", redis_queue.queue)
    args = (
        "--database-url", database_url, "--publish", str(contracts),
        "--broker-url", REDIS_BROKER_URL, "--result-backend", RESULT_BACKEND_URL,
    )  # fmt: skip
    with (
        serving(*args, cwd=tmp_path) as served,
        running_worker(redis_queue, tmp_path, name="serve-gateway") as worker,
    ):
        token = _send_token(database_url)
        accepted = _send(served.url, token, {"kwargs": {"person": ADA, "times": 2}})
        deadline = time.monotonic() + 20
        while True:
            result = httpx.get(f"{served.url}/results/{accepted['task_id']}", timeout=5).json()
            if result["state"] not in ("PENDING", "STARTED") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert result["state"] == "SUCCESS", (result, worker.read_log()[-3000:])
        assert result["result"]["text"] == "Hello, Ada!Hello, Ada!"
        assert result["result"]["times"] == 2
    assert f"task gateway: POST {served.url}/tasks/{{name}}/send -> {REDIS_BROKER_URL}" in (
        served.output
    )
    assert f"task results: GET {served.url}/results/{{task_id}} <- {RESULT_BACKEND_URL}" in (
        served.output
    )


def test_serve_reads_the_broker_and_result_backend_from_the_environment(
    tmp_path: Path, redis_queue: Setup
) -> None:
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    contracts = _greet_contracts(tmp_path / "contracts", redis_queue.queue)
    env = {
        "TASKSCHEMA_DATABASE_URL": database_url,
        "TASKSCHEMA_BROKER_URL": REDIS_BROKER_URL,
        "TASKSCHEMA_RESULT_BACKEND": RESULT_BACKEND_URL,
    }
    with serving("--publish", str(contracts), cwd=tmp_path, env=env) as served:
        token = _send_token(database_url)
        accepted = _send(served.url, token, {"args": [ADA], "kwargs": {"shout": True}})
        # No worker consumes the queue: the message waits in its Redis list, as sent.
        broker = redis.Redis(REDIS_HOST, REDIS_PORT, db=int(REDIS_BROKER_URL.rsplit("/", 1)[1]))
        (raw,) = broker.lrange(redis_queue.queue, 0, -1)
        message = json.loads(raw)
        assert message["headers"]["task"] == "demo.greet"
        assert message["headers"]["id"] == accepted["task_id"]
        assert message["content-type"] == "application/json"
        # The result backend is configured too: an unfinished task reads as PENDING, not 503.
        result = httpx.get(f"{served.url}/results/{accepted['task_id']}", timeout=5)
        assert result.status_code == 200, result.text
        assert result.json()["state"] == "PENDING"
    assert f"-> {REDIS_BROKER_URL}" in served.output
    assert f"<- {RESULT_BACKEND_URL}" in served.output


# -- check -------------------------------------------------------------------------


def _pair(tmp_path: Path, task: str, old_schema: dict, new_schema: dict) -> tuple[Path, Path]:
    old = write(tmp_path / "old.json", make_contract(task, properties={"x": old_schema}))
    new = write(tmp_path / "new.json", make_contract(task, properties={"x": new_schema}))
    return old, new


def test_check_offline_compatible_exits_0(tmp_path: Path) -> None:
    old, new = _pair(tmp_path, "a.b", {"type": "integer"}, {"type": "number"})
    result = run("check", str(old), str(new))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == f"{new}: compatible (BACKWARD)"


def test_check_offline_incompatible_names_file_path_rule_and_who_breaks(tmp_path: Path) -> None:
    old, new = _pair(
        tmp_path, "a.b", {"type": ["integer", "string"]}, {"type": "integer", "maximum": 5}
    )
    result = run("check", str(old), str(new))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{new}: incompatible (BACKWARD)"
    assert f"  {new}:/params/properties/x/maximum: limit-added: " in result.stdout
    assert f"  {new}:/params/properties/x/type: type-narrowed: " in result.stdout
    assert "(params backward)" in result.stdout
    assert "params backward: producers still on the older contract" in result.stdout
    forward = run("check", str(old), str(new), "--mode", "FORWARD")
    assert forward.returncode == 0


def test_check_json_output(tmp_path: Path) -> None:
    old, new = _pair(tmp_path, "a.b", {"type": "string"}, {"type": "string", "format": "email"})
    result = run("check", str(old), str(new), "--format", "json", "--mode", "FULL")
    assert result.returncode == 1
    (entry,) = json.loads(result.stdout)
    assert entry["file"] == str(new)
    assert entry["compatible"] is False
    assert entry["mode"] == "FULL"
    assert [(v["rule"], v["direction"]) for v in entry["violations"]] == [
        ("format-added", "backward")
    ]


def test_check_input_errors_exit_2(tmp_path: Path) -> None:
    old, _ = _pair(tmp_path, "a.b", {"type": "string"}, {"type": "string"})
    other = write(tmp_path / "other.json", make_contract("c.d"))
    broken = write(tmp_path / "broken.json", {"task": "a.b", "params": {}, "returns": {}})
    cases = {
        (str(old),): "exactly OLD.json NEW.json",
        (str(old), str(other)): "is for 'a.b' but",
        (str(old), str(broken)): f"{broken}:/params: 'type' is a required property",
        (str(old), str(tmp_path / "missing.json")): "No such file",
    }
    for args, message in cases.items():
        result = run("check", *args)
        assert result.returncode == 2, args
        assert message in result.stderr, (args, result.stderr)


def test_check_against_the_registry(
    sqlite_registry: Registry, tmp_path: Path, task_name: str
) -> None:
    sqlite_registry.publisher.post(
        f"/tasks/{task_name}/versions",
        json=make_contract(task_name, properties={"x": {"type": "integer"}}),
    )
    _, fine = _pair(tmp_path, task_name, {}, {"type": ["integer", "string"]})
    ok = run("check", str(fine), "--registry", sqlite_registry.url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "compatible (BACKWARD)" in ok.stdout
    _, bad = _pair(tmp_path, task_name, {}, {"type": "string"})
    refused = run("check", str(bad), "--registry", sqlite_registry.url, "--version", "1")
    assert refused.returncode == 1
    assert f"{bad}:/params/properties/x/type: type-changed:" in refused.stdout
    assert "(params backward vs v1)" in refused.stdout


def test_publish_prints_the_violations_of_a_refused_change(
    sqlite_registry: Registry, tmp_path: Path, task_name: str
) -> None:
    token = token_of(sqlite_registry.publisher)
    old, new = _pair(tmp_path, task_name, {"type": "integer"}, {"type": "integer", "minimum": 1})
    assert (
        run("publish", str(old), "--registry", sqlite_registry.url, "--token", token).returncode
        == 0
    )
    result = run("publish", str(new), "--registry", sqlite_registry.url, "--token", token)
    assert result.returncode == 1
    assert f"{new}: refused (incompatible)" in result.stdout
    assert f"  {new}:/params/properties/x/minimum: limit-added: minimum 1" in result.stdout
    assert "params backward: producers still on the older contract" in result.stdout
