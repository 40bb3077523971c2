"""The Node client (clients/node) from the tests: build it, run its test scripts.

`send` runs one real Node process (clients/node/test/harness.ts, built) that creates a
producer, sends one task and, if asked, waits for `get()`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from workers import RESULT_BACKEND_URL

from conftest import ROOT, service_missing

NODE_CLIENT = ROOT / "clients" / "node"
BUILT_TESTS = NODE_CLIENT / "build" / "test"


def npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args], cwd=NODE_CLIENT, capture_output=True, text=True, timeout=timeout
    )


def build_node_client() -> Path:
    """clients/node with its dependencies installed, built (src and tests) just now.

    Skips (fails under CI=true) when node or npm is missing."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        service_missing(
            "Node.js 20+ and npm (for clients/node)",
            FileNotFoundError(f"{' and '.join(missing)} not on PATH"),
        )
    if not (NODE_CLIENT / "node_modules").is_dir():  # `make test` runs npm ci first
        installed = npm("ci", "--no-audit", "--no-fund")
        assert installed.returncode == 0, installed.stderr
    for script in ("build", "build:test"):
        built = npm("run", "--silent", script)
        assert built.returncode == 0, f"npm run {script} failed:\n{built.stdout}{built.stderr}"
    return NODE_CLIENT


def run_node(script: str, instruction: Any) -> Any:
    """Run a built test script with `instruction` as JSON on stdin; its JSON output."""
    done = subprocess.run(
        ["node", str(BUILT_TESTS / script)],
        input=json.dumps(instruction),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, f"node {script} exited {done.returncode}:\n{done.stderr}"
    return json.loads(done.stdout)


def send(
    node_client: Path,
    broker_url: str,
    task: str,
    *,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    registry: str | None = None,
    get: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One send from a fresh Node process: `{"id", "result"}` or `{"error": {...}}`."""
    producer: dict[str, Any] = {"broker": broker_url, "backend": RESULT_BACKEND_URL}
    if registry is not None:
        producer["registry"] = registry
    call = {"args": args or [], "kwargs": kwargs or {}}
    out: dict[str, Any] = run_node(
        "harness.js",
        {"producer": producer, "task": task, "call": call, "options": options or {}, "get": get},
    )
    return out
