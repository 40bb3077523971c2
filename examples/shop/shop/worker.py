"""The shop's Celery worker: every task implemented through its generated stub.

Run it with `make worker` (or `celery -A shop.worker worker -Q orders,notifications`).
`install` turns on the validating consumer with the contracts the stubs were generated
from, so a message from any producer is checked before a task runs; `implement` checks
each function against its contract when this module is imported.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from celery import Celery
from pydantic import AwareDatetime
from taskschema.celery import install

from shop_tasks import CONTRACTS
from shop_tasks.notifications import (
    Channel,
    Customer,
    NotifyOrderStatusResult,
    OrderStatus,
    ScheduleDigestResult,
    SendEmailResult,
    SendSmsResult,
    notify_order_status,
    schedule_digest,
    send_email,
    send_sms,
)
from shop_tasks.orders import (
    BankTransferPayment,
    BulkImportResult,
    BulkImportResultErrorsItem,
    BulkImportSource,
    CancellationResult,
    CancelOrderReason,
    CardPayment,
    GetOrderStatusResult,
    Money,
    Order,
    Receipt,
    Refund,
    RefundMethodKind,
    RefundStatus,
    WalletPayment,
    bulk_import,
    cancel_order,
    get_order_status,
    process_order,
    refund_payment,
)

app = Celery(
    "shop",
    broker=os.environ.get("SHOP_BROKER_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("SHOP_RESULT_BACKEND", "redis://127.0.0.1:6379/1"),
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)
install(app, contracts=CONTRACTS, unknown_tasks="reject")


def now() -> datetime:
    return datetime.now(UTC)


# -- orders -----------------------------------------------------------------------------


@process_order.implement(app)
def process(order: Order, priority: int = 0) -> Receipt:
    total = sum(item.unit_price.amount * item.quantity for item in order.items)
    return Receipt(
        receipt_id=uuid.uuid4(),
        order_id=order.id,
        status=OrderStatus.paid,
        total=Money(amount=round(total, 2), currency=order.items[0].unit_price.currency),
        processed_at=now(),
    )


@cancel_order.implement(app)
def cancel(
    order_id: uuid.UUID,
    reason: CancelOrderReason,
    refund: bool = True,
    comment: str | None = None,
) -> CancellationResult:
    return CancellationResult(
        order_id=order_id,
        status=OrderStatus.refunded if refund else OrderStatus.cancelled,
        refund_id=uuid.uuid4() if refund else None,
        cancelled_at=now(),
    )


@get_order_status.implement(app)
def status(order_id: uuid.UUID) -> GetOrderStatusResult:
    return GetOrderStatusResult(
        order_id=order_id, status=OrderStatus.pending, tracking_number=None, updated_at=now()
    )


@refund_payment.implement(app)
def refund(
    order_id: uuid.UUID,
    amount: Money,
    method: CardPayment | BankTransferPayment | WalletPayment,
    idempotency_key: str | None = None,
) -> Refund:
    return Refund(
        refund_id=uuid.uuid5(uuid.NAMESPACE_OID, idempotency_key or str(uuid.uuid4())),
        order_id=order_id,
        amount=amount,
        method_kind=RefundMethodKind(method.kind),
        status=RefundStatus.pending,
        created_at=now(),
    )


@bulk_import.implement(app)
def import_orders(
    orders: list[Order], dry_run: bool = False, source: BulkImportSource = BulkImportSource.csv
) -> BulkImportResult:
    seen: set[uuid.UUID] = set()
    errors: list[BulkImportResultErrorsItem] = []
    for index, order in enumerate(orders):
        if order.id in seen:
            errors.append(BulkImportResultErrorsItem(index=index, message="duplicate order id"))
        seen.add(order.id)
    imported = 0 if dry_run else len(seen)
    return BulkImportResult(
        total=len(orders),
        imported=imported,
        skipped=len(orders) - imported,
        errors=errors,
        dry_run=dry_run,
    )


# -- notifications ----------------------------------------------------------------------


@notify_order_status.implement(app)
def notify(
    customer: Customer,
    order_id: uuid.UUID,
    status: OrderStatus,
    channel: Channel = Channel.email,
    include_tracking: bool = True,
) -> NotifyOrderStatusResult:
    reachable = channel is not Channel.sms or customer.phone is not None
    return NotifyOrderStatusResult(
        notification_id=uuid.uuid4(), channel=channel, sent_at=now() if reachable else None
    )


@schedule_digest.implement(app)
def digest(
    user_id: uuid.UUID,
    send_at: AwareDatetime,
    channel: Channel = Channel.email,
    max_items: int = 10,
) -> ScheduleDigestResult:
    return ScheduleDigestResult(
        digest_id=uuid.uuid4(), channel=channel, scheduled_for=max(send_at, now())
    )


@send_email.implement(app)
def email(
    to: str,
    subject: str,
    body: str,
    # Never shared between calls: the worker passes every call a copy of the default.
    cc: list[str] = [],  # noqa: B006
    reply_to: str | None = None,
) -> SendEmailResult:
    return SendEmailResult(message_id=f"<{uuid.uuid4()}@shop.example>", accepted_at=now())


@send_sms.implement(app)
def sms(phone: str, text: str, sender_id: str | None = None) -> SendSmsResult:
    # 160 characters a segment, as GSM-7 counts them.
    return SendSmsResult(
        message_id=str(uuid.uuid4()), segments=-(-len(text) // 160), accepted_at=now()
    )
