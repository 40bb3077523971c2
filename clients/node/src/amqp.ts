/**
 * Publishing to RabbitMQ (AMQP 0-9-1) as Celery does: through the default exchange with
 * the queue's name as routing key, persistent, on a confirm channel so `send` resolves only
 * once the broker has the message.
 */
import { connect, type ChannelModel, type ConfirmChannel, type Options } from "amqplib";

import { messageOf, redact } from "./backend";
import { BrokerError } from "./errors";
import type { TaskMessage, Transport } from "./protocol";

/** amqplib's publish options for `message`. */
export function amqpPublishOptions(message: TaskMessage): Options.Publish {
  const { properties } = message;
  return {
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    headers: message.headers,
    deliveryMode: properties.deliveryMode,
    priority: properties.priority,
    correlationId: properties.correlationId,
    replyTo: properties.replyTo,
    ...(properties.expiration === undefined ? {} : { expiration: properties.expiration }),
  };
}

/**
 * How Celery declares a queue it has no definition for (`task_create_missing_queues`):
 * a durable direct exchange and a durable queue of the same name, bound by that name.
 * `maxPriority` mirrors `task_queue_max_priority`.
 */
export function queueDeclaration(queue: string, maxPriority?: number) {
  return {
    exchange: { name: queue, type: "direct" as const, options: { durable: true, autoDelete: false } },
    queue: {
      name: queue,
      options: {
        durable: true,
        autoDelete: false,
        exclusive: false,
        ...(maxPriority === undefined ? {} : { arguments: { "x-max-priority": maxPriority } }),
      },
    },
    routingKey: queue,
  };
}

interface Connected {
  connection: ChannelModel;
  channel: ConfirmChannel;
}

/** A RabbitMQ broker (`amqp://user:pass@host:5672/vhost`). Connects on first publish. */
export class AmqpTransport implements Transport {
  private connecting: Promise<Connected> | undefined;
  private current: ChannelModel | undefined;
  private readonly queues = new Map<string, Promise<void>>();
  private closed = false;

  constructor(
    readonly url: string,
    private readonly maxPriority?: number,
  ) {}

  async publish(message: TaskMessage): Promise<void> {
    if (this.closed) throw new BrokerError("the producer is closed");
    let connected: Connected;
    try {
      connected = await this.connected();
    } catch (error) {
      throw this.error(`could not connect to ${redact(this.url)}`, error);
    }
    try {
      await this.ensureQueue(connected, message.queue);
    } catch (error) {
      throw this.error(`could not check or declare queue '${message.queue}' on ${redact(this.url)}`, error);
    }
    const { channel } = connected;
    await new Promise<void>((resolve, reject) => {
      try {
        channel.publish("", message.queue, message.body, amqpPublishOptions(message), (error) => {
          if (error) reject(this.error(`${redact(this.url)} did not confirm ${String(message.headers["task"])}`, error));
          else resolve();
        });
      } catch (error) {
        reject(this.error(`could not publish ${String(message.headers["task"])} to ${redact(this.url)}`, error));
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const connecting = this.connecting;
    this.connecting = undefined;
    if (!connecting) return;
    try {
      const { connection } = await connecting;
      await connection.close();
    } catch {
      // Never connected, or already gone: nothing left to close.
    }
  }

  private connected(): Promise<Connected> {
    if (!this.connecting) {
      const attempt = this.open();
      this.connecting = attempt;
      attempt.catch(() => {
        if (this.connecting === attempt) this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private async open(): Promise<Connected> {
    const connection = await connect(this.url);
    this.current = connection;
    const forget = () => {
      // The next publish reconnects (and re-checks its queue); a connection closed
      // after a newer one opened must not forget the newer one.
      if (this.current !== connection) return;
      this.current = undefined;
      this.connecting = undefined;
      this.queues.clear();
    };
    // Without 'error' listeners a dropped connection would crash the process.
    connection.on("error", () => undefined);
    connection.on("close", forget);
    const channel = await connection.createConfirmChannel();
    channel.on("error", () => undefined);
    channel.on("close", () => {
      forget();
      if (!this.closed) connection.close().catch(() => undefined);
    });
    return { connection, channel };
  }

  /**
   * Make sure `queue` exists. One declared already (by a worker, perhaps with arguments such
   * as `x-max-priority` or `x-queue-type`) is used as it is: redeclaring it with different
   * arguments would fail, so it is only checked, on a throwaway channel because a failed
   * check closes the channel it ran on.
   */
  private ensureQueue(connected: Connected, queue: string): Promise<void> {
    let pending = this.queues.get(queue);
    if (!pending) {
      pending = this.declareIfMissing(connected, queue);
      this.queues.set(queue, pending);
      pending.catch(() => this.queues.delete(queue));
    }
    return pending;
  }

  private async declareIfMissing({ connection, channel }: Connected, queue: string): Promise<void> {
    const probe = await connection.createChannel();
    probe.on("error", () => undefined);
    try {
      await probe.checkQueue(queue);
      await probe.close();
      return;
    } catch (error) {
      if ((error as { code?: unknown }).code !== 404) throw error;
    }
    const declaration = queueDeclaration(queue, this.maxPriority);
    await channel.assertExchange(declaration.exchange.name, declaration.exchange.type, declaration.exchange.options);
    await channel.assertQueue(declaration.queue.name, declaration.queue.options);
    await channel.bindQueue(declaration.queue.name, declaration.exchange.name, declaration.routingKey);
  }

  private error(what: string, cause: unknown): BrokerError {
    return new BrokerError(`${what}: ${messageOf(cause)}`, { cause });
  }
}
