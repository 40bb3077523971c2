// Calls of the generated helpers: the right ones must compile under tsc --strict, and each
// line after a ts-expect-error comment must be an error (tsc reports an unused expectation).
import type { Producer } from "taskschema";

import { notifications, orders } from "./gen/index.js";

export async function calls(producer: Producer, order: orders.Order): Promise<void> {
  const receipt: orders.Receipt = await (await orders.processOrder(producer, { order })).get();
  const total: number = receipt.total.amount;
  await orders.processOrder(producer, { order, priority: 3 }, { countdown: 5, queue: "fast" });
  await notifications.sendEmail(producer, { to: "a@b.co", subject: "s", body: "b", cc: ["c@d.e"] });
  const handle = await notifications.sendSms(producer, { phone: "+4915112345678", text: "hi" });
  const id: string = handle.id;
  const status: orders.OrderStatus = "paid";
  const queue: string = orders.processOrderTask.options.queue;
  void [total, id, status, queue];

  // @ts-expect-error misspelled parameter
  await orders.processOrder(producer, { ordr: order });
  // @ts-expect-error missing required parameter
  await orders.processOrder(producer, {});
  // @ts-expect-error wrong type: string for an integer
  await orders.processOrder(producer, { order, priority: "high" });
  // @ts-expect-error unknown send option
  await orders.processOrder(producer, { order }, { countdwn: 5 });
  // @ts-expect-error wrong type for an enum
  await orders.cancelOrder(producer, { order_id: "x", reason: "bored" });
  // @ts-expect-error the result is a Receipt, not a string
  const text: string = await (await orders.processOrder(producer, { order })).get();
  // @ts-expect-error Receipt has no field totl
  void receipt.totl;
  // @ts-expect-error cc is a list of addresses
  await notifications.sendEmail(producer, { to: "a@b.co", subject: "s", body: "b", cc: "c@d.e" });
  // @ts-expect-error no such task helper
  await orders.processOrders(producer, { order });
  void text;
}
