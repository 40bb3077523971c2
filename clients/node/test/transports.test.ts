import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { amqpPublishOptions, queueDeclaration } from "../src/amqp";
import { buildTaskMessage, resolveTiming } from "../src/protocol";
import { PRIORITY_SEPARATOR, redisEnvelope, redisQueueKey } from "../src/redis";

const ID = "6afbf757-24f0-416f-a84d-957c3bfb7230";
const REPLY_TO = "75ce4bd5-cb10-32b1-a274-812e24c5fed3";

function message(priority?: number, expires?: number) {
  return buildTaskMessage({
    task: "demo.greet",
    id: ID,
    args: [],
    kwargs: {},
    queue: "taskschema.reftest",
    priority,
    ...resolveTiming({ expires }, new Date()),
    origin: "gen1@host",
    replyTo: REPLY_TO,
  });
}

describe("redisEnvelope", () => {
  it("is kombu's Redis message, with snake_case properties and a base64 body", () => {
    const envelope = redisEnvelope(message(), "4b235719-e662-4255-92fe-b393670c3fbe");
    // Key for key what kombu 5 wrote for the same call (`send_task("demo.greet", queue=...)`).
    assert.deepEqual(Object.keys(envelope), ["body", "content-encoding", "content-type", "headers", "properties"]);
    assert.equal(
      envelope.body,
      // Byte for byte the body kombu wrote.
      "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=",
    );
    assert.deepEqual(JSON.parse(Buffer.from(envelope.body, "base64").toString("utf8")), [
      [],
      {},
      { callbacks: null, errbacks: null, chain: null, chord: null },
    ]);
    assert.equal(envelope["content-encoding"], "utf-8");
    assert.equal(envelope["content-type"], "application/json");
    assert.deepEqual(envelope.properties, {
      correlation_id: ID,
      reply_to: REPLY_TO,
      delivery_mode: 2,
      delivery_info: { exchange: "", routing_key: "taskschema.reftest" },
      priority: 0,
      body_encoding: "base64",
      delivery_tag: "4b235719-e662-4255-92fe-b393670c3fbe",
    });
  });

  it("gives every message a fresh uuid delivery tag and keeps the TTL Celery sets", () => {
    const first = redisEnvelope(message(5, 60));
    const second = redisEnvelope(message(5, 60));
    assert.match(first.properties.delivery_tag, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(first.properties.delivery_tag, second.properties.delivery_tag);
    assert.equal(first.properties.expiration, "60000");
    assert.equal(first.properties.priority, 5);
  });
});

describe("redisQueueKey", () => {
  it("maps priorities onto kombu's steps 0, 3, 6, 9", () => {
    const expected: [number, string][] = [
      [0, "q"],
      [1, "q"],
      [2, "q"],
      [3, `q${PRIORITY_SEPARATOR}3`],
      [5, `q${PRIORITY_SEPARATOR}3`],
      [6, `q${PRIORITY_SEPARATOR}6`],
      [8, `q${PRIORITY_SEPARATOR}6`],
      [9, `q${PRIORITY_SEPARATOR}9`],
      [200, `q${PRIORITY_SEPARATOR}9`], // clamped to 9
      [-4, "q"], // clamped to 0
    ];
    for (const [priority, key] of expected) assert.equal(redisQueueKey("q", priority), key, `priority ${priority}`);
    assert.equal(PRIORITY_SEPARATOR, "\x06\x16");
  });
});

describe("AMQP", () => {
  it("publishes with Celery's properties", () => {
    const published = message(7, 1.5);
    assert.deepEqual(amqpPublishOptions(published), {
      contentType: "application/json",
      contentEncoding: "utf-8",
      headers: published.headers,
      deliveryMode: 2,
      priority: 7,
      correlationId: ID,
      replyTo: REPLY_TO,
      expiration: "1500",
    });
  });

  it("declares a missing queue as Celery does: durable, bound to a direct exchange of its name", () => {
    assert.deepEqual(queueDeclaration("jobs"), {
      exchange: { name: "jobs", type: "direct", options: { durable: true, autoDelete: false } },
      queue: { name: "jobs", options: { durable: true, autoDelete: false, exclusive: false } },
      routingKey: "jobs",
    });
    assert.deepEqual(queueDeclaration("jobs", 10).queue.options.arguments, { "x-max-priority": 10 });
  });
});
