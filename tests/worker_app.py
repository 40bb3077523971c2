"""The Celery app the worker tests run: real prefork workers, contracts enforced.

Configured from the environment so each test can point it at its broker and queue:
TEST_BROKER_URL, TEST_RESULT_BACKEND, TEST_QUEUE, TEST_DEAD_LETTER_QUEUE, TEST_CONTRACTS
(a folder; default tests/contracts), TEST_UNKNOWN_TASKS (allow or reject),
TEST_MAX_BODY_BYTES (install's max_body_bytes), TEST_METRICS_PORT (install's metrics_port),
TASKSCHEMA_REGISTRY_URL (optional: the demo tasks' contracts are then preloaded from the
registry, or from the disk cache under TASKSCHEMA_CACHE_DIR when it is down),
TEST_MARKER_DIR.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from celery import Celery
from pydantic import BaseModel, ConfigDict

from taskschema import TaskContract
from taskschema._files import contract_files
from taskschema._sources import RegistryContracts
from taskschema.celery import ContractTask, install

HERE = Path(__file__).resolve().parent

app = Celery(
    "worker_app",
    broker=os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("TEST_RESULT_BACKEND", "redis://127.0.0.1:6379/1"),
)
queue = os.environ.get("TEST_QUEUE", "celery")
app.conf.update(
    task_default_queue=queue,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": 5},
    broker_connection_retry_on_startup=True,
)
contracts_dir = os.environ.get("TEST_CONTRACTS")
options: dict[str, object] = {}
if os.environ.get("TEST_DEAD_LETTER_QUEUE"):
    options["dead_letter_queue"] = os.environ["TEST_DEAD_LETTER_QUEUE"]
if os.environ.get("TEST_MAX_BODY_BYTES"):
    options["max_body_bytes"] = int(os.environ["TEST_MAX_BODY_BYTES"])
if os.environ.get("TEST_METRICS_PORT"):
    options["metrics_port"] = int(os.environ["TEST_METRICS_PORT"])
gate = install(
    app,
    contracts=[
        TaskContract.from_json(path.read_bytes())
        for path in contract_files([Path(contracts_dir)] if contracts_dir else [HERE / "contracts"])
    ],
    unknown_tasks=os.environ.get("TEST_UNKNOWN_TASKS", "allow"),  # type: ignore[arg-type]
    **options,  # type: ignore[arg-type]
)
DEMO_TASKS = ("demo.greet", "demo.broken_return", "demo.sleep")
for source in getattr(gate.decoder.contracts, "sources", ()):
    if isinstance(source, RegistryContracts):
        # Fills the disk cache while the registry is up, reads it back while it is down.
        source.preload(DEMO_TASKS)


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    born: datetime
    email: str | None = None


class Greeting(BaseModel):
    text: str
    age_days: int
    times: int


@app.task(base=ContractTask, name="demo.greet")
def greet(person: Person, times: int = 1, shout: bool = False) -> Greeting:
    assert isinstance(person, Person), f"expected a Person, got {type(person).__name__}"
    text = f"Hello, {person.name}!" * times
    age = (datetime(2026, 1, 1, tzinfo=UTC) - person.born).days
    return Greeting(text=text.upper() if shout else text, age_days=age, times=times)


@app.task(base=ContractTask, name="demo.broken_return")
def broken_return(n: int) -> dict[str, object]:
    return {"total": str(n)}


@app.task(base=ContractTask, name="demo.sleep", acks_late=True, reject_on_worker_lost=True)
def sleep(seconds: float, marker: str) -> str:
    marker_dir = Path(os.environ.get("TEST_MARKER_DIR", "/tmp"))
    with (marker_dir / f"{marker}.started").open("a") as file:
        file.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    with (marker_dir / marker).open("a") as file:
        file.write(f"{os.getpid()}\n")
    return marker


@app.task(name="demo.untyped")
def untyped(*args: object, **kwargs: object) -> list[object]:
    return [list(args), kwargs]
