"""`install` without a worker: settings, and contract options applied to tasks."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from celery import Celery
from kombu.message import Message

from taskschema import TaskContract
from taskschema._exceptions import ContractViolation
from taskschema.celery import ContractTask, Mode, gate_for, install, prepare_tasks
from taskschema.kombu import Rejection, TaskCall

from helpers import make_contract


def test_install_sets_the_validating_consumer_and_reads_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = Celery("t", broker="memory://")
    monkeypatch.setenv("TASKSCHEMA_MODE", "warn")
    gate = install(app)
    assert gate is gate_for(app)
    assert gate.mode == "warn"
    assert app.conf.worker_consumer == "taskschema.celery:ValidatingConsumer"
    assert "application/x-python-serialize" not in gate.decoder.accept


JOB = TaskContract(
    make_contract(
        "demo.job",
        properties={"x": {"type": "integer", "minimum": 1}},
        returns={"type": "integer", "minimum": 1},
    )
)


def message(task: str, args: list[Any], body: bytes | None = None) -> Message:
    return Message(
        body=json.dumps([args, {}, {}]).encode() if body is None else body,
        content_type="application/json",
        content_encoding="utf-8",
        headers={"task": task, "id": "1"},
    )


def test_mode_off_keeps_the_envelope_checks_and_checks_no_contract() -> None:
    app = Celery("t", broker="memory://")
    gate = install(app, mode="off", contracts=[JOB], unknown_tasks="reject")
    assert app.conf.worker_consumer == "taskschema.celery:ValidatingConsumer"
    decoder = gate.consumer_decoder({"demo.job"})
    assert isinstance(decoder.decode(message("demo.job", [0])), TaskCall)
    refused = decoder.decode(message("demo.job", [], body=b"[[], {}]"))
    assert isinstance(refused, Rejection)
    assert refused.reason == "malformed-envelope"
    assert gate.contract_for("demo.job") is JOB  # the pool still binds arguments by it


def test_the_consumer_looks_up_contracts_of_registered_tasks_only() -> None:
    """A producer inventing task names must not cost a contract lookup (a registry call)
    per name: those tasks are refused as unregistered anyway."""
    gate = install(Celery("t", broker="memory://"), contracts=[JOB])
    asked: list[str] = []
    static = gate.decoder.contracts

    class Recording:
        def contract_for(self, task: str) -> TaskContract | None:
            asked.append(task)
            return static.contract_for(task)

    gate.decoder.contracts = Recording()
    decoder = gate.consumer_decoder({"demo.job"})
    invented = decoder.decode(message("invented.name", [1]))
    assert isinstance(invented, TaskCall)
    assert invented.contract is None
    refused = decoder.decode(message("demo.job", [0]))
    assert isinstance(refused, Rejection)
    assert refused.reason == "contract-violation"
    assert asked == ["demo.job"]


@pytest.mark.parametrize("mode", ["enforce", "warn", "off"])
def test_contract_task_checks_eager_calls_and_returns_by_mode(
    mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celery("t", broker="memory://")
    install(app, mode=mode, contracts=[JOB])

    @app.task(base=ContractTask, name="demo.job", shared=False)
    def job(x: int) -> int:
        return x - 1

    # x=0 breaks the arguments' contract (and its return, -1, the return's); x=1 the return.
    for bad, reason, warnings in (([0], "contract-violation", 2), ([1], "return-violation", 1)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="taskschema.celery"):
            if mode == "enforce":
                with pytest.raises(ContractViolation) as raised:
                    job.apply(bad, throw=True)
                assert raised.value.error["error"] == reason
                continue
            assert job.apply(bad, throw=True).get() == bad[0] - 1
        warned = [r for r in caplog.records if "warn mode" in r.getMessage()]
        assert len(warned) == (warnings if mode == "warn" else 0)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="enforce, warn or off"):
        install(Celery("t", broker="memory://"), mode="loud")  # type: ignore[arg-type]


def test_worker_side_options_come_from_the_contract() -> None:
    app = Celery("t", broker="memory://")
    contract = TaskContract(
        make_contract(
            "demo.job",
            options={"queue": "jobs", "acks_late": True, "max_retries": 7, "time_limit": 30},
        )
    )
    install(app, contracts=[contract])

    @app.task(name="demo.job", acks_late=False)
    def job(x: int) -> None:
        return None

    prepare_tasks(app)
    task = app.tasks["demo.job"]
    assert (task.acks_late, task.max_retries, task.time_limit) == (True, 7, 30)


def test_validators_are_compiled_when_the_worker_starts() -> None:
    app = Celery("t", broker="memory://")
    contract = TaskContract(make_contract("demo.job"))
    install(app, contracts=[contract])

    @app.task(name="demo.job")
    def job(x: int) -> None:
        return None

    assert not {"_params_schema", "_returns_schema"} & vars(contract).keys()
    prepare_tasks(app)
    assert {"_params_schema", "_returns_schema"} <= vars(contract).keys()
