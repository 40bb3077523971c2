"""Calls of the generated stubs that mypy --strict and pyright must accept (not run)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from celery.canvas import Signature
from shop_tasks.notifications import Channel, send_email, send_sms
from shop_tasks.orders import (
    Address,
    BulkImportSource,
    CardPayment,
    CardPaymentBrand,
    Currency,
    Customer,
    LineItem,
    Money,
    Order,
    Receipt,
    Refund,
    bulk_import,
    process_order,
    refund_payment,
)

from taskschema import TypedResult


def an_order() -> Order:
    address = Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")
    return Order(
        id=uuid4(),
        customer=Customer(id=uuid4(), email="a@example.com", name="Ann", address=address),
        items=[
            LineItem(sku="ABC-1234", quantity=2, unit_price=Money(amount=5, currency=Currency.EUR))
        ],
        payment_method=CardPayment(
            kind="card", brand=CardPaymentBrand.visa, last4="4242", exp_month=1, exp_year=2030
        ),
        placed_at=datetime.now(UTC),
    )


def calls(order: Order, order_id: UUID) -> None:
    result: TypedResult[Receipt] = process_order.delay(order=order)
    receipt: Receipt = result.get(timeout=10)
    assert receipt.total.currency is Currency.EUR
    process_order.delay(order, 3)
    process_order.delay(order=order, priority=9)
    process_order.apply_async({"order": order}, countdown=5, queue="orders", priority=3)
    process_order.apply_async(kwargs={"order": order, "priority": 1}, eta=datetime.now(UTC))
    signature: Signature[Any] = process_order.s(order=order)
    assert signature is not None
    process_order.delay_on_commit(order=order)
    bulk_import.delay([order], dry_run=True, source=BulkImportSource.marketplace)
    refund: Refund = refund_payment.delay(
        order_id, Money(amount=1, currency=Currency.USD), an_order().payment_method
    ).get()
    assert refund.amount.amount >= 0
    refund_payment.delay(
        order_id=order_id,
        amount=Money(amount=1, currency=Currency.USD),
        method=order.payment_method,
        idempotency_key=None,
    )
    send_email.delay("to@example.com", "Hi", "Body", cc=["cc@example.com"], reply_to=None)
    send_sms.apply_async({"phone": "+4915112345678", "text": "hi"}, expires=60)
    assert Channel.sms.value == "sms"
