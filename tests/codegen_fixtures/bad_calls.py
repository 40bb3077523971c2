# ruff: noqa: F841, B018  (deliberately wrong code, checked by mypy and pyright)
"""Wrong calls of the generated stubs: every line marked `# wrong [code]` must be an error
under mypy --strict (with that error code) and pyright (with the matching rule), at that
line, and no other line may be (not run)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from shop_tasks.notifications import Channel, notify_order_status, send_email
from shop_tasks.notifications import Customer as NotifiedCustomer
from shop_tasks.notifications import OrderStatus as NotifiedStatus
from shop_tasks.orders import (
    Currency,
    Money,
    Order,
    OrderStatus,
    Receipt,
    process_order,
    refund_payment,
)


def calls(order: Order, customer: NotifiedCustomer, customer_id: UUID, money: Money) -> None:
    process_order.delay(ordr=order)  # wrong [call-arg]: misspelled parameter
    process_order.delay()  # wrong [call-arg]: missing required argument
    process_order.delay(order=order, priority="high")  # wrong [arg-type]: str for int
    process_order.delay(order={"id": "x"})  # wrong [arg-type]: dict for Order
    process_order.delay(order, 1, 2)  # wrong [call-arg]: too many positional arguments
    process_order.apply_async({"order": order, "prio": 1})  # wrong [typeddict-unknown-key]: typo
    process_order.apply_async({"priority": 1})  # wrong [typeddict-item]: missing required key
    process_order.apply_async({"order": order}, countdwn=5)  # wrong [call-arg]: misspelled option
    process_order.apply_async({"order": order}, queue=5)  # wrong [arg-type]: int for a queue name
    process_order.s(order=order, priority=None)  # wrong [arg-type]: None is not an int
    process_order.s(ordr=order)  # wrong [call-arg]: misspelled parameter
    process_order.s(priority=1)  # wrong [call-arg]: missing required argument
    process_order.delay_on_commit(order=money)  # wrong [arg-type]: Money for Order
    process_order.delay_on_commit(order=order, prio=1)  # wrong [call-arg]: misspelled parameter
    process_order.delay_on_commit()  # wrong [call-arg]: missing required argument
    text: str = process_order.delay(order=order).get()  # wrong [assignment]: a Receipt
    receipt: Receipt = process_order.delay(order=order).get()
    receipt.totl  # wrong [attr-defined]: Receipt has no attribute totl
    refund_payment.delay(customer_id, money, "card")  # wrong [arg-type]: str for the payment union
    refund_payment.delay(
        customer_id,
        money,
        order.payment_method,
        idempotency_key=5,  # wrong [arg-type]: int
    )
    send_email.delay("a@b.co", "s", "b", cc="c@d.e")  # wrong [arg-type]: str for list[str]
    notify_order_status.delay(
        customer,
        customer_id,
        "paid",  # wrong [arg-type]: str for the OrderStatus enum
    )
    notify_order_status.delay(customer, customer_id, NotifiedStatus.paid, channel=Channel.sms)
    notify_order_status.delay(
        order.customer,  # wrong [arg-type]: the orders namespace's Customer
        customer_id,
        NotifiedStatus.paid,
    )
    notify_order_status.delay(
        customer,
        customer_id,
        OrderStatus.paid,  # wrong [arg-type]: orders' enum
    )
    Money(amount=1, currency="EUR")  # wrong [arg-type]: str for the Currency enum
    Money(amount=1, currency=Currency.EUR, extra=1)  # wrong [call-arg]: no such field
    when: datetime = datetime.now(UTC)
    process_order.apply_async({"order": order}, eta=when)
