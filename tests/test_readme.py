"""Every example of the README's "Producers in other languages" and "HTTP task gateway"
sections, pasted and run for real.

The registry is started by the README's own `taskschema serve` block (the example
contracts published from `schemas/`), real workers of the example service
(examples/shop) run on Redis and on RabbitMQ, and each shell block runs with bash as it
is written; the TypeScript one is compiled with tsc against the built Node client and run
with node. Blocks are marked in README.md with `<!-- run by tests/test_readme.py as NAME
-->`, and every code block of the two sections must carry a mark.

A run changes only where things are, each change checked to apply: the Redis databases
0 and 1 become this module's own, the registry gets a free port, and the RabbitMQ
queue is this run's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from nodejs import NODE_CLIENT
from workers import (
    AMQP_URL,
    REDIS_HOST,
    REDIS_PORT,
    RESULT_TIMEOUT,
    Setup,
    Worker,
    require_services,
)

from conftest import ROOT, service_missing
from helpers import free_port

README = ROOT / "README.md"
SHOP = ROOT / "examples" / "shop"
BIN = Path(sys.executable).parent
SECTIONS = ("Producers in other languages", "HTTP task gateway")
MARK = re.compile(
    r"<!-- run by tests/test_readme\.py as ([\w-]+) -->\n```(\w+)\n(.*?)^```", re.S | re.M
)
# Databases of this module's own: the shop's fixed queue names meet no other test's
# messages, and the README's databases 0 and 1 stay the user's.
BROKER_DB, BACKEND_DB = 10, 11
BROKER_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}"
BACKEND_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{BACKEND_DB}"
ORDER_ID = "0b6f3c2e-6d2a-4a53-9a39-6a1f3d0c2b11"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks() -> dict[str, tuple[str, str]]:
    """The marked blocks of both sections: name -> (language, code)."""
    found: dict[str, tuple[str, str]] = {}
    for title in SECTIONS:
        for name, lang, code in MARK.findall(section(title)):
            assert name not in found, f"two README blocks are marked {name}"
            found[name] = (lang, code)
    return found


def block(name: str) -> str:
    return blocks()[name][1]


def replaced(code: str, *swaps: tuple[str, str]) -> str:
    """`code` with each (old, new) swapped; each old text must be there, so a README
    change that moves what a test relies on fails here rather than running elsewhere."""
    for old, new in swaps:
        assert old in code, f"{old!r} is no longer in the README block:\n{code}"
        code = code.replace(old, new)
    return code


def on_our_redis(code: str) -> str:
    """`code` sending to this module's Redis databases instead of 0 and 1 (in URLs and as
    `redis-cli -n`), in one pass so that no database is renamed twice."""
    ours = {"0": str(BROKER_DB), "1": str(BACKEND_DB)}
    return re.sub(
        r"(redis://127\.0\.0\.1:6379/|-n )([01])\b",
        lambda found: found.group(1) + ours[found.group(2)],
        code,
    )


def bash(
    script: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`script` run by bash as a pasted block: stopping at the first failing command."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        # As after `source .venv/bin/activate`: taskschema and python3 are the checkout's.
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_documents(text: str) -> list[Any]:
    """Every JSON document printed in `text`, in order (outputs may share a line)."""
    decoder = json.JSONDecoder()
    documents, index = [], 0
    while (start := text.find("{", index)) != -1:
        document, index = decoder.raw_decode(text, start)
        documents.append(document)
    return documents


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        service_missing(", ".join(missing), FileNotFoundError("not on PATH"))


# -- the README's structure -------------------------------------------------------------


def test_every_example_in_the_sections_is_marked_and_run() -> None:
    for title in SECTIONS:
        text = section(title)
        fences = re.findall(r"^```(\w*)$", text, re.M)
        opened = fences[::2]  # every other fence opens a block
        assert all(opened), f"a block in {title!r} has no language"
        marked = MARK.findall(text)
        assert len(marked) == len(opened), f"a block in {title!r} is not run by this module"
    # Each marked block is taken by name by a test of this module.
    source = Path(__file__).read_text()
    unused = [name for name in blocks() if f'"{name}"' not in source]
    assert not unused, f"README blocks no test here runs: {unused}"


# -- the services the examples talk to --------------------------------------------------


def start_shop_worker(
    setup: Setup, log_dir: Path, broker_url: str, queues: tuple[str, ...]
) -> Worker:
    env = {"SHOP_BROKER_URL": broker_url, "SHOP_RESULT_BACKEND": BACKEND_URL}
    worker = Worker(
        setup, log_dir, env, name="readme-shop", app="shop.worker", cwd=SHOP, queues=queues
    )
    return worker.start()


@pytest.fixture(scope="module")
def redis_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """The example service's worker as `make worker` runs it, on this module's Redis."""
    require_services("redis")
    for db in (BROKER_DB, BACKEND_DB):
        redis.Redis(REDIS_HOST, REDIS_PORT, db=db).flushdb()
    worker = start_shop_worker(
        Setup("redis"), tmp_path_factory.mktemp("readme-redis"), BROKER_URL,
        ("orders", "notifications"),
    )  # fmt: skip
    try:
        yield worker
    finally:
        worker.stop()


@dataclass
class AmqpShop:
    worker: Worker
    queue: str  # the queue it consumes, in place of the README's `orders`


@pytest.fixture(scope="module")
def amqp_shop(redis_shop: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AmqpShop]:
    """The example service's worker on RabbitMQ, as the README starts it there, on a
    queue of this run's own (queue names are global on a RabbitMQ virtual host). After
    `redis_shop`, which empties the result database this worker writes to as well."""
    require_services("amqp")
    setup = Setup("amqp")
    setup.purge()
    worker = start_shop_worker(
        setup, tmp_path_factory.mktemp("readme-amqp"), AMQP_URL, (setup.queue,)
    )
    try:
        yield AmqpShop(worker, setup.queue)
    finally:
        worker.stop()
        setup.delete()


@dataclass
class Gateway:
    url: str
    folder: Path  # where `serve` runs: its ./taskschema.db, and `schemas` of the checkout

    def localized(self, code: str) -> str:
        return on_our_redis(replaced(code, ("http://127.0.0.1:8000", self.url)))


@pytest.fixture(scope="module")
def gateway(redis_shop: Worker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The README's `taskschema serve` block, running (in the background, on a free port)."""
    folder = tmp_path_factory.mktemp("readme-gateway")
    (folder / "schemas").symlink_to(ROOT / "schemas", target_is_directory=True)
    port = free_port()
    serve = on_our_redis(
        replaced(block("gateway-serve"), ("taskschema serve ", f"taskschema serve --port {port} "))
    )
    log = (folder / "serve.log").open("wb")
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", serve],
        cwd=folder,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: bash and the server stop together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_published(url, process, folder / "serve.log")
        yield Gateway(url, folder)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def wait_until_published(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"taskschema serve exited {process.returncode}:\n{log.read_text()}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/tasks/orders.cancel_order", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"taskschema serve did not publish the example contracts:\n{log.read_text()}")


def send_token_line() -> str:
    """The gateway section's `export SEND_TOKEN=...` line, which the curl examples need."""
    (line,) = [line for line in block("gateway-send").splitlines() if "SEND_TOKEN=$(" in line]
    return line


def result_of(gateway: Gateway, task_id: str) -> dict[str, Any]:
    """The task's result through the gateway, waiting out a PENDING one: the examples'
    `sleep` is what a person needs, a loaded test machine may need longer."""
    deadline = time.monotonic() + RESULT_TIMEOUT
    while True:
        result: dict[str, Any] = httpx.get(f"{gateway.url}/results/{task_id}", timeout=10).json()
        if result["state"] != "PENDING" or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


# -- Producers in other languages: raw messages -----------------------------------------


def run_raw(name: str, *swaps: tuple[str, str]) -> dict[str, Any]:
    """Run a block that publishes a message with id `$ID` and reads its result back with
    `redis-cli GET`; the result it printed. One line is added after the block, printing
    `$ID`, so that when the block's `sleep` was too short for a loaded machine (nothing
    stored yet) the test can wait for the result itself."""
    require_tools("redis-cli")
    script = on_our_redis(replaced(block(name), *swaps))
    ran = bash(script + '\necho "$ID"')
    assert ran.returncode == 0, ran.stdout + ran.stderr
    *printed, task_id = ran.stdout.splitlines()
    stored = printed[-1].strip() if printed else ""  # GET's answer; empty for none yet
    results = redis.Redis(REDIS_HOST, REDIS_PORT, db=BACKEND_DB)
    deadline = time.monotonic() + RESULT_TIMEOUT
    while not stored:
        assert time.monotonic() < deadline, f"no result for {task_id}: {ran.stderr}"
        time.sleep(0.2)
        stored = (results.get(f"celery-task-meta-{task_id}") or b"").decode()
    found: dict[str, Any] = json.loads(stored)
    return found


def test_redis_protocol_2__a_hand_made_message_is_refused_with_its_violation(
    redis_shop: Worker,
) -> None:
    stored = run_raw("redis-protocol-2")
    assert stored["status"] == "FAILURE", stored
    (error,) = stored["result"]["exc_message"]
    assert [v["path"] for v in error["violations"]] == ["/order_id"]
    assert redis_shop.alive


def test_redis_protocol_1__an_old_go_style_body_runs(redis_shop: Worker) -> None:
    stored = run_raw("redis-protocol-1")
    assert stored["status"] == "SUCCESS", stored
    assert stored["result"]["order_id"] == ORDER_ID
    assert stored["result"]["status"] == "pending"
    assert redis_shop.alive


def test_amqp_protocol_2__amqp_publish_runs_on_rabbitmq(amqp_shop: AmqpShop) -> None:
    require_tools("amqp-publish")
    stored = run_raw("amqp-protocol-2", ("-r orders ", f"-r {amqp_shop.queue} "))
    assert stored["status"] == "SUCCESS", f"{stored}\n{amqp_shop.worker.read_log()[-3000:]}"
    assert stored["result"]["order_id"] == ORDER_ID
    assert amqp_shop.worker.alive


# -- Producers in other languages: curl and Node ----------------------------------------


def test_curl_producer__runs_and_a_bad_call_is_refused(
    gateway: Gateway, redis_shop: Worker
) -> None:
    require_tools("curl")
    script = gateway.localized(send_token_line() + "\n" + block("curl-producer"))
    ran = bash(script, cwd=gateway.folder)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    sent, read, refused = json_documents(ran.stdout)
    assert sent["task"] == "orders.get_order_status", sent
    assert read["task_id"] == sent["task_id"]
    result = read if read["state"] != "PENDING" else result_of(gateway, sent["task_id"])
    assert result["state"] == "SUCCESS", result
    assert result["result"]["order_id"] == ORDER_ID
    assert result["result"]["status"] == "pending"
    assert refused["error"] == "contract_violation", refused
    assert [v["path"] for v in refused["violations"]] == ["/order_id"]


def node_project(root: Path) -> Path:
    """A Node project at `root` set up as the README's node-install block says: the
    built clients/node (the node_client fixture runs its first line, `npm ci` and
    `npm run build`), installed with its second line, `npm install <path>`."""
    first, second = block("node-install").splitlines()
    assert first.split("#")[0].strip() == "cd clients/node && npm ci && npm run build"
    root.mkdir()
    (root / "package.json").write_text('{"type": "module", "private": true}\n')
    install = replaced(second, ("/path/to/taskschema/clients/node", str(NODE_CLIENT)))
    installed = bash(install, cwd=root, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (root / "node_modules" / "taskschema").resolve() == NODE_CLIENT.resolve()
    # The Node type definitions a project has for `console` and the like: the ones the
    # package is built with.
    (root / "node_modules" / "@types").mkdir()
    (root / "node_modules" / "@types" / "node").symlink_to(
        NODE_CLIENT / "node_modules" / "@types" / "node", target_is_directory=True
    )
    (root / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "target": "ES2022",
                    "lib": ["ES2022"],
                    "module": "Node16",
                    "moduleResolution": "Node16",
                    "strict": True,
                    "types": ["node"],
                    "outDir": "build",
                },
                "include": ["producer.ts"],
            }
        )
    )
    return root


def test_node_install__and_node_producer__compile_and_run(
    node_client: Path, gateway: Gateway, redis_shop: Worker, tmp_path: Path
) -> None:
    root = node_project(tmp_path / "project")
    (root / "producer.ts").write_text(gateway.localized(block("node-producer")))
    built = subprocess.run(
        [str(NODE_CLIENT / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    ran = subprocess.run(
        ["node", "build/producer.js"],
        cwd=root, capture_output=True, text=True, timeout=RESULT_TIMEOUT + 30, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr + redis_shop.read_log()[-3000:]
    # console.log of the result, as Node prints an object.
    assert f"order_id: '{ORDER_ID}'" in ran.stdout, ran.stdout
    assert "status: 'pending'" in ran.stdout, ran.stdout
    # The second call is refused by ajv against the registry's contract: nothing sent.
    assert "path: '/order_id'" in ran.stderr, ran.stderr
    assert 'must match format "uuid"' in ran.stderr, ran.stderr


# -- HTTP task gateway ------------------------------------------------------------------


def test_gateway_serve__and_gateway_send__run_the_task_after_its_countdown(
    gateway: Gateway, redis_shop: Worker
) -> None:
    require_tools("curl")
    ran = bash(gateway.localized(block("gateway-send")), cwd=gateway.folder)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    sent, read = json_documents(ran.stdout)
    assert (sent["task"], sent["version"]) == ("orders.cancel_order", 1), sent
    result = read if read["state"] != "PENDING" else result_of(gateway, sent["task_id"])
    assert result["state"] == "SUCCESS", result
    assert result["result"]["order_id"] == ORDER_ID
    assert result["result"]["status"] == "refunded"  # refund defaults to true: the worker's
    assert f"Task orders.cancel_order[{sent['task_id']}] succeeded" in redis_shop.read_log()
