"""`install` without a worker: settings, and contract options applied to tasks."""

from __future__ import annotations

import pytest
from celery import Celery

from taskschema import TaskContract
from taskschema.celery import apply_contract_options, gate_for, install

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


def test_mode_off_keeps_celerys_consumer() -> None:
    app = Celery("t", broker="memory://")
    install(app, mode="off")
    assert app.conf.worker_consumer != "taskschema.celery:ValidatingConsumer"


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

    apply_contract_options(app)
    task = app.tasks["demo.job"]
    assert (task.acks_late, task.max_retries, task.time_limit) == (True, 7, 30)
