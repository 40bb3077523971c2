"""Generated stubs end to end: a typed send through a real broker (RabbitMQ and Redis) to a
prefork worker whose tasks were bound with implement(), and `.get()` returning the model;
`delay_on_commit` through a real Django transaction."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from workers import (
    BROKERS,
    REDIS_BROKER_DB,
    REDIS_BROKER_URL,
    REDIS_HOST,
    REDIS_PORT,
    RESULT_TIMEOUT,
    Setup,
    require_services,
    running_worker,
)

from codegen import apply, from_folders, generate, plan
from taskschema import CallValidationError

from conftest import ROOT


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("codegen-e2e")
    apply(plan(root / "shop_tasks", generate(from_folders([ROOT / "schemas"])).files))
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


@pytest.fixture(params=BROKERS)
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    require_services(request.param)
    setup = Setup(request.param)
    setup.purge()
    yield setup
    setup.delete()


def an_order(orders: Any) -> Any:
    address = orders.Address(line1="1 Main St", city="Paris", postal_code="75001", country="FR")
    return orders.Order(
        id=uuid4(),
        customer=orders.Customer(id=uuid4(), email="ann@example.com", name="Ann", address=address),
        items=[
            orders.LineItem(
                sku="ABC-1234",
                quantity=3,
                unit_price=orders.Money(amount=2.5, currency=orders.Currency.EUR),
            )
        ],
        payment_method=orders.WalletPayment(
            kind="wallet", provider=orders.WalletPaymentProvider.paypal
        ),
        placed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_typed_send_to_an_implemented_worker_returns_the_model(
    generated: Path, setup: Setup, tmp_path: Path
) -> None:
    from shop_tasks import notifications, orders  # type: ignore[import-not-found]

    client = setup.client()
    env = {"TEST_CODEGEN_DIR": str(generated)}
    with running_worker(setup, tmp_path, env, name="codegen", app="codegen_worker_app"):
        order = an_order(orders)
        # The contract routes process_order to the "orders" queue; send it to ours.
        result = orders.process_order.using(client).apply_async(
            {"order": order, "priority": 7}, queue=setup.queue
        )
        receipt = result.get(timeout=RESULT_TIMEOUT)
        assert isinstance(receipt, orders.Receipt)
        assert receipt.order_id == order.id
        assert receipt.total == orders.Money(amount=7.5, currency=orders.Currency.EUR)
        assert receipt.status is orders.OrderStatus.paid

        # Optional parameters left out are filled by the worker, not sent.
        sms = notifications.send_sms.using(client).apply_async(
            {"phone": "+33612345678", "text": "x" * 200}, queue=setup.queue
        )
        sent = sms.get(timeout=RESULT_TIMEOUT)
        assert (sent.message_id, sent.segments) == ("+33612345678:default", 2)

    # A call that breaks the contract never leaves the producer.
    with pytest.raises(CallValidationError, match="/priority"):
        orders.process_order.using(client).delay(order=order, priority=10)


# -- delay_on_commit through Django ---------------------------------------------------------

DJANGO_SCRIPT = """
import sys
import django
from django.conf import settings

settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                          "NAME": ":memory:"}})
django.setup()
from django.db import transaction
from celery import Celery
import redis

sys.path.insert(0, sys.argv[1])
from shop_tasks.orders import get_order_status

queue, broker = sys.argv[2], sys.argv[3]
app = Celery("commit-test", broker=broker)
stub = get_order_status.using(app)
client = redis.Redis(*sys.argv[4:6], db=int(sys.argv[6]))
order_id = "7d3c3c3e-6f0b-4a52-9d6a-2c2f7b7d5a11"

with transaction.atomic():
    stub.delay_on_commit(order_id=order_id)
    inside = client.llen(queue)
after_commit = client.llen(queue)
try:
    with transaction.atomic():
        stub.delay_on_commit(order_id=order_id)
        raise RuntimeError("roll back")
except RuntimeError:
    pass
after_rollback = client.llen(queue)
try:
    stub.delay_on_commit(order_id="not-a-uuid")
except Exception as exc:
    refused = type(exc).__name__
print(inside, after_commit, after_rollback, refused)
"""


def test_delay_on_commit_sends_only_when_the_transaction_commits(
    generated: Path, tmp_path: Path
) -> None:
    pytest.importorskip("django")
    require_services("redis")
    script = tmp_path / "commit.py"
    script.write_text(DJANGO_SCRIPT)
    # delay_on_commit takes no options, so the message goes to the contract's queue.
    queue = orders_queue = "orders"
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(generated), queue, REDIS_BROKER_URL,
             REDIS_HOST, str(REDIS_PORT), str(REDIS_BROKER_DB)],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        inside, committed, rolled_back, refused = done.stdout.split()
        # Nothing is sent inside the transaction, one message on commit, none on rollback,
        # and a bad call fails at once, not at commit.
        assert (int(committed) - int(inside), int(rolled_back) - int(committed)) == (1, 0)
        assert refused == "CallValidationError"
    finally:
        redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_BROKER_DB).delete(orders_queue)


def test_delay_on_commit_without_django_says_so(generated: Path) -> None:
    code = (
        "import sys; sys.modules['django'] = None; sys.path.insert(0, sys.argv[1])\n"
        "from shop_tasks.orders import get_order_status\n"
        "try:\n"
        "    get_order_status.delay_on_commit(order_id='7d3c3c3e-6f0b-4a52-9d6a-2c2f7b7d5a11')\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(generated)], capture_output=True, text=True, check=True
    )
    assert "delay_on_commit() publishes through Django's transaction.on_commit" in done.stdout
    assert "use delay() instead" in done.stdout
