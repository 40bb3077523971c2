"""Send typed calls to the shop's worker and print what comes back.

Run `make worker` in one terminal and `make produce` in another. Every call is checked
against its contract before it is published; `.get()` returns the contract's model.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from celery import Celery
from taskschema import CallValidationError

from shop_tasks.notifications import send_email
from shop_tasks.orders import (
    Address,
    CancelOrderReason,
    CardPayment,
    CardPaymentBrand,
    Currency,
    Customer,
    LineItem,
    Money,
    Order,
    cancel_order,
    process_order,
)

# Stubs send through the current Celery app (this one), or another: `stub.using(app)`.
app = Celery(
    "shop-producer",
    broker=os.environ.get("SHOP_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("SHOP_RESULT_BACKEND", "redis://127.0.0.1:6379/1"),
)
TIMEOUT = 30

ADA = Customer(
    id=uuid.UUID("0b6f3c2e-6d2a-4a53-9a39-6a1f3d0c2b11"),
    email="ada@example.com",
    name="Ada Lovelace",
    address=Address(line1="12 St James's Square", city="London", postal_code="SW1Y 4JH",
                    country="GB"),
)  # fmt: skip


def main() -> None:
    price = Money(amount=12.5, currency=Currency.EUR)
    order = Order(
        id=uuid.uuid4(),
        customer=ADA,
        items=[LineItem(sku="BOK-0001", quantity=2, unit_price=price)],
        payment_method=CardPayment(
            kind="card", brand=CardPaymentBrand.visa, last4="4242", exp_month=12, exp_year=2030
        ),
        placed_at=datetime.now(UTC),
    )
    receipt = process_order.delay(order=order, priority=5).get(timeout=TIMEOUT)
    print(f"process_order -> {type(receipt).__name__}: {receipt.model_dump_json()}")

    cancelled = cancel_order.delay(
        order_id=order.id, reason=CancelOrderReason.customer_request
    ).get(timeout=TIMEOUT)
    print(f"cancel_order  -> {type(cancelled).__name__}: {cancelled.model_dump_json()}")

    sent = send_email.delay(to="ada@example.com", subject="Hi", body="Thanks!")
    print(f"send_email    -> {sent.get(timeout=TIMEOUT).model_dump_json()}")

    try:  # refused before anything is published: priority is at most 9
        process_order.delay(order=order, priority=12)
    except CallValidationError as exc:
        print(f"refused       -> {exc}")


if __name__ == "__main__":
    main()
