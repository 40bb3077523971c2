"""Fixtures shared by the tests that run real workers, registered from conftest.py.

Each module that uses them runs once per broker (RabbitMQ, then Redis), with a task queue
and a dead-letter queue of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from workers import BROKERS, DeadLetters, Setup, require_services


@pytest.fixture(scope="module", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> str:
    """The broker this module run uses; skips (fails under CI) when it is down."""
    name: str = request.param
    require_services(name)
    return name


@pytest.fixture(scope="module")
def setup(broker: str) -> Iterator[Setup]:
    """A queue and a dead-letter queue of this module run's own, empty."""
    queues = Setup(broker)
    queues.purge()
    yield queues
    queues.delete()


@pytest.fixture(scope="module")
def client(setup: Setup) -> Iterator[Celery]:
    """A producer-side Celery app for `setup`: sends by name, reads results."""
    app = setup.client()
    yield app
    app.close()


@pytest.fixture(scope="module")
def dead_letters(setup: Setup) -> DeadLetters:
    return DeadLetters(setup)
