"""Decoder cost per message, and worker throughput with the decoder vs plain Celery.

Per message: `MessageDecoder.decode` on the reference payloads (small ~50 B, medium
~1.4 KB, large ~100 KB), against parsing the same bytes with json.loads (which every
consumer pays anyway) and against validating with python-jsonschema alone.
Throughput: the same no-op task drained from Redis by a prefork worker (-c 2) with the
validating consumer and by one without, in the same run; target ratio >= 0.95.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kombu.message import Message

from taskschema import StaticContracts, TaskContract
from taskschema._validation import compile_schema
from taskschema.kombu import MessageDecoder

from .bench_compat import median_ms


def median_us(function: Callable[[], object], repeat: int) -> float:
    return median_ms(function, repeat) * 1000


HERE = Path(__file__).resolve().parent
PAYLOADS: dict[str, Any] = json.loads((HERE / "reference-payloads.json").read_text())
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/7")
TASKS = int(os.environ.get("BENCH_TASKS", "3000"))
TARGET_RATIO = 0.95
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def contract_document(size: str) -> dict[str, Any]:
    """A reference payload's schema as the contract of task bench.<size>."""
    schema = dict(PAYLOADS[size]["schema"])
    defs = schema.pop("$defs", {})
    for annotation in ("$schema", "$id"):
        schema.pop(annotation, None)
    return {"task": f"bench.{size}", "params": schema, "returns": {}, "$defs": defs}


def per_message() -> None:
    print("decoder cost per message (median µs)")
    print(f"  {'payload':<8} {'bytes':>8} {'json.loads':>11} {'decode':>9} {'ratio':>6} "
          f"{'jsonschema':>11}")  # fmt: skip
    for size in ("small", "medium", "large"):
        _measure(size)


def _measure(size: str) -> None:
    contract = TaskContract(contract_document(size))
    decoder = MessageDecoder(StaticContracts([contract]))
    body = json.dumps([[], PAYLOADS[size]["payload"], {}]).encode()
    message = Message(
        body=body,
        content_type="application/json",
        content_encoding="utf-8",
        headers={"task": contract.task, "id": str(uuid.uuid4())},
    )
    assert decoder.decode(message).__class__.__name__ == "TaskCall"
    repeat = 2000 if size != "large" else 100
    parse = median_us(lambda: json.loads(body), repeat)
    decode = median_us(lambda: decoder.decode(message), repeat)
    reference = compile_schema(contract.to_dict()["params"] | {"$defs": contract.defs})
    payload = PAYLOADS[size]["payload"]
    naive = median_us(lambda: reference.validate(payload), max(repeat // 20, 5))
    print(f"  {size:<8} {len(body):>8} {parse:>11.1f} {decode:>9.1f} "
          f"{decode / parse:>5.1f}x {naive:>11.1f}")  # fmt: skip


def drain_rate(validate: bool) -> float:
    """Tasks per second a worker takes off its queue, from its first fetch to its last.

    Progress is read from the queue's length, so the task itself is a true no-op: a
    counter bumped by every task would add a round trip to both workers alike and dilute
    the decoder's share. The prefetch window (8 messages) still running at the end is
    the same for both workers and negligible against the queue's length.
    """
    import redis

    from .bench_app import app

    queue = f"bench.{uuid.uuid4().hex[:8]}"
    broker = redis.Redis.from_url(BROKER)
    payload = PAYLOADS["small"]["payload"]
    with app.producer_or_acquire() as producer:
        for _ in range(TASKS):
            app.send_task("bench.small", kwargs=payload, queue=queue, producer=producer)
    env = {**os.environ, "BENCH_QUEUE": queue, "BENCH_VALIDATE": "1" if validate else "0"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.bench.bench_app", "worker", "-P",
         "prefork", "-c", "2", "-Q", queue, "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", "warning", "-n", f"{queue}@%h"],
        env=env,
        cwd=HERE.parent.parent,
        stdout=subprocess.DEVNULL,  # the banner; a worker that fails to start times out below
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its pool children can be killed with it
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while (waiting := broker.llen(queue)) >= TASKS:
            assert time.monotonic() < deadline, "the benchmark worker did not start"
            time.sleep(0.002)
        start = time.perf_counter()
        while (left := broker.llen(queue)) > 0:
            assert time.monotonic() < deadline, f"{left} of {TASKS} tasks still queued"
            time.sleep(0.002)
        return waiting / (time.perf_counter() - start)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:  # the measurement is taken; do not wait on it
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        broker.delete(queue)


def throughput() -> None:
    plain: list[float] = []
    checked: list[float] = []
    for _ in range(ROUNDS):  # paired and alternated, so drift on the machine hits both alike
        plain.append(drain_rate(validate=False))
        checked.append(drain_rate(validate=True))
    ratio = statistics.median(c / p for p, c in zip(plain, checked, strict=True))
    print(f"worker throughput on Redis, prefork -c 2, {TASKS} small tasks, {ROUNDS} paired rounds")
    print(f"  plain Celery        {statistics.median(plain):8.0f} tasks/s (median)")
    print(f"  validating decoder  {statistics.median(checked):8.0f} tasks/s (median)")
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"  ratio {ratio:.2f}, median of the rounds' (target >= {TARGET_RATIO}) -> {verdict}")


def main() -> None:
    per_message()
    print()
    throughput()


if __name__ == "__main__":
    main()
