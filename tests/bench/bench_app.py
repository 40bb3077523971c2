"""The Celery app of the throughput benchmark: a no-op task, validated or not.

BENCH_VALIDATE=1 installs the validating consumer; otherwise this is plain Celery.
"""

from __future__ import annotations

import os

from celery import Celery

from taskschema import TaskContract
from taskschema.celery import ContractTask, install

from .bench_decoder import BROKER, contract_document

app = Celery("bench_app", broker=BROKER)
app.conf.update(
    task_default_queue=os.environ.get("BENCH_QUEUE", "bench"),
    task_ignore_result=True,
    worker_prefetch_multiplier=4,
    accept_content=["json"],
)
validate = os.environ.get("BENCH_VALIDATE") == "1"
if validate:
    install(app, contracts=[TaskContract(contract_document("small"))])


@app.task(name="bench.small", base=ContractTask if validate else app.Task)
def small(name: str, count: int, flag: bool) -> None:
    return None
