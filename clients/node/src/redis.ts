/**
 * Publishing to a Redis broker as kombu's Redis transport does: the message is a JSON
 * envelope LPUSHed onto the queue's list (the worker BRPOPs), its body base64-encoded,
 * and priorities other than 0 go to sibling lists named `<queue>\x06\x16<step>`.
 */
import { randomUUID } from "node:crypto";

import { Redis } from "ioredis";

import { closeRedis, messageOf, redact } from "./backend";
import { BrokerError } from "./errors";
import { pythonJson, type Json, type TaskMessage, type Transport } from "./protocol";

/** kombu's `PRIORITY_STEPS` and `Channel.sep`. */
export const PRIORITY_STEPS: readonly number[] = [0, 3, 6, 9];
export const PRIORITY_SEPARATOR = "\x06\x16";

/** kombu's Redis message: what `Channel.prepare_message` and `basic_publish` write. */
export interface RedisEnvelope {
  body: string;
  "content-encoding": string;
  "content-type": string;
  headers: TaskMessage["headers"];
  properties: {
    correlation_id: string;
    reply_to: string;
    delivery_mode: number;
    expiration?: string;
    delivery_info: { exchange: string; routing_key: string };
    priority: number;
    body_encoding: "base64";
    delivery_tag: string;
  };
}

/** The envelope of `message`, published through the default exchange to its queue. */
export function redisEnvelope(message: TaskMessage, deliveryTag: string = randomUUID()): RedisEnvelope {
  const { properties } = message;
  return {
    body: message.body.toString("base64"),
    "content-encoding": message.contentEncoding,
    "content-type": message.contentType,
    headers: message.headers,
    properties: {
      correlation_id: properties.correlationId,
      reply_to: properties.replyTo,
      delivery_mode: properties.deliveryMode,
      ...(properties.expiration === undefined ? {} : { expiration: properties.expiration }),
      delivery_info: { exchange: "", routing_key: message.queue },
      priority: properties.priority,
      body_encoding: "base64",
      delivery_tag: deliveryTag,
    },
  };
}

/**
 * The list a message of `priority` goes to (kombu's `Channel._q_for_pri`): the priority is
 * clamped to 0-9 and rounded down to a step; step 0 is the queue's own list. On Redis the
 * worker drains lower steps first, so 0 is the most urgent.
 */
export function redisQueueKey(queue: string, priority: number, steps: readonly number[] = PRIORITY_STEPS): string {
  const clamped = Math.max(0, Math.min(Math.trunc(Number.isFinite(priority) ? priority : 0), 9));
  let step = steps[0] ?? 0;
  for (const candidate of steps) if (candidate <= clamped) step = candidate;
  return step ? `${queue}${PRIORITY_SEPARATOR}${step}` : queue;
}

/** A Redis broker (`redis://host:port/db`). Connects on first publish. */
export class RedisTransport implements Transport {
  private readonly client: Redis;
  private lastError: Error | undefined;

  constructor(readonly url: string) {
    this.client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    this.client.on("error", (error: Error) => {
      this.lastError = error;
    });
  }

  async publish(message: TaskMessage): Promise<void> {
    const key = redisQueueKey(message.queue, message.properties.priority);
    try {
      // Written as kombu writes it (an envelope is plain JSON: strings, numbers, objects).
      await this.client.lpush(key, pythonJson(redisEnvelope(message) as unknown as Json));
    } catch (error) {
      const cause = this.lastError ?? error;
      throw new BrokerError(`could not publish ${String(message.headers["task"])} to ${redact(this.url)}: ${messageOf(cause)}`, {
        cause,
      });
    }
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }
}
