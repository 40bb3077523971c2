"""A Celery app whose tasks are implemented against generated stubs (test_codegen_worker.py).

Configured from the environment like worker_app.py (TEST_BROKER_URL, TEST_RESULT_BACKEND,
TEST_QUEUE, TEST_DEAD_LETTER_QUEUE), plus TEST_CODEGEN_DIR: the folder holding the
generated package `shop_tasks`.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from uuid import NAMESPACE_URL, uuid5

from celery import Celery

from taskschema.celery import install

sys.path.insert(0, os.environ["TEST_CODEGEN_DIR"])

import shop_tasks
from shop_tasks.notifications import send_sms
from shop_tasks.notifications._models import SendSmsResult
from shop_tasks.orders import (
    Money,
    Order,
    OrderStatus,
    Receipt,
    process_order,
)

app = Celery(
    "codegen_worker_app",
    broker=os.environ.get("TEST_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("TEST_RESULT_BACKEND", "redis://127.0.0.1:6379/1"),
)
app.conf.update(
    task_default_queue=os.environ.get("TEST_QUEUE", "celery"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": 5},
    broker_connection_retry_on_startup=True,
)
install(
    app,
    contracts=shop_tasks.CONTRACTS,
    dead_letter_queue=os.environ.get("TEST_DEAD_LETTER_QUEUE", "taskschema.dead_letter"),
)


@process_order.implement(app)
def process(order: Order, priority: int = 0) -> Receipt:
    # The stub's contract made the worker hand over models, not dicts.
    assert isinstance(order, Order), f"expected an Order, got {type(order).__name__}"
    total = sum(item.unit_price.amount * item.quantity for item in order.items)
    return Receipt(
        receipt_id=uuid5(NAMESPACE_URL, f"receipt:{order.id}:{priority}"),
        order_id=order.id,
        status=OrderStatus.paid,
        total=Money(amount=total, currency=order.items[0].unit_price.currency),
        processed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@send_sms.implement(app)
def sms(phone: str, text: str, sender_id: str | None = None) -> SendSmsResult:
    return SendSmsResult(
        message_id=f"{phone}:{sender_id or 'default'}",
        segments=len(text) // 160 + 1,
        accepted_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
