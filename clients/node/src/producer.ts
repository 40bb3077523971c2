/** The producer: validates a call, publishes it as Celery would, and reads its result back. */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

import { AmqpTransport } from "./amqp";
import { outcomeOf, redact, RedisResultBackend } from "./backend";
import { TaskSchemaError, TaskTimeoutError, ValidationError, type Violation } from "./errors";
import { buildTaskMessage, DEFAULT_QUEUE, resolveTiming, toJson, type Json, type JsonObject, type TaskMessage, type Transport } from "./protocol";
import { RedisTransport } from "./redis";
import { RegistryClient } from "./registry";
import { CallValidator, type TaskContract } from "./validation";

export interface ProducerOptions {
  /** `amqp://user:pass@host:5672/vhost` (also `amqps://`) or `redis://host:6379/db` (also `rediss://`). */
  broker: string;
  /** Celery's Redis result backend, `redis://host:6379/db`: needed by `TaskHandle.get()`. */
  backend?: string;
  /** The taskschema registry: contracts for validation and their Celery options. */
  registry?: string;
  /** A bearer token, when the registry requires one for reads. */
  registryToken?: string;
  /** Check calls against their contract before publishing (default: true when `registry` is set). */
  validate?: boolean;
  /** The queue of tasks whose contract and options name none (Celery's `task_default_queue`). */
  defaultQueue?: string;
  /** `x-max-priority` of queues this producer has to create on RabbitMQ (Celery's `task_queue_max_priority`). */
  queueMaxPriority?: number;
}

export interface SendOptions {
  /** Overrides the contract's queue. */
  queue?: string;
  /** 0-255 on RabbitMQ (higher runs first, if the queue has `x-max-priority`); 0-9 on Redis (lower runs first). */
  priority?: number;
  /** Seconds from now before the task may run. */
  countdown?: number;
  eta?: Date | string;
  /** Seconds from now, or a moment, after which the worker discards the task. */
  expires?: number | Date | string;
  /** The task id (default: a random UUID). */
  taskId?: string;
  /** Seconds; the task sees `SoftTimeLimitExceeded`. */
  softTimeLimit?: number;
  /** Seconds; the worker kills the task. */
  timeLimit?: number;
  /** Overrides the producer's `validate` for this call. */
  validate?: boolean;
}

export interface TaskCall {
  args?: unknown[];
  kwargs?: Record<string, unknown>;
}

export interface GetOptions {
  /** Reject with `TaskTimeoutError` after this long (default: wait for ever). */
  timeoutMs?: number;
  /** How often to poll the result backend (default 100 ms). */
  intervalMs?: number;
}

export interface TaskHandle<R> {
  readonly id: string;
  /**
   * The task's return value. Rejects with `ContractViolationError` when the worker refused
   * the call, `TaskFailedError` when the task raised, `TaskTimeoutError` after `timeoutMs`.
   */
  get(options?: GetOptions): Promise<R>;
}

export interface Producer {
  send<R = unknown>(task: string, call: TaskCall, options?: SendOptions): Promise<TaskHandle<R>>;
  close(): Promise<void>;
}

/** A producer for `options.broker`. Connections open on first use. */
export function createProducer(options: ProducerOptions): Producer {
  return new TaskSchemaProducer(options);
}

class TaskSchemaProducer implements Producer {
  private readonly transport: Transport;
  private readonly backend: RedisResultBackend | undefined;
  private readonly registry: RegistryClient | undefined;
  private readonly validator = new CallValidator();
  private readonly validate: boolean;
  private readonly defaultQueue: string;
  private readonly replyTo = randomUUID();
  private readonly origin = `gen${process.pid}@${hostname()}`;

  constructor(options: ProducerOptions) {
    this.transport = transportFor(options);
    if (options.backend !== undefined) {
      if (!/^rediss?:\/\//.test(options.backend)) {
        throw new TaskSchemaError(`backend must be a redis:// URL (Celery's Redis result backend), got ${redact(options.backend)}`);
      }
      this.backend = new RedisResultBackend(options.backend);
    }
    if (options.registry !== undefined) this.registry = new RegistryClient(options.registry, options.registryToken);
    this.validate = options.validate ?? options.registry !== undefined;
    if (this.validate && !this.registry) {
      throw new TaskSchemaError("validate: true needs a registry to read contracts from: pass createProducer({registry: 'http://…'})");
    }
    this.defaultQueue = options.defaultQueue ?? DEFAULT_QUEUE;
  }

  async send<R = unknown>(task: string, call: TaskCall, options: SendOptions = {}): Promise<TaskHandle<R>> {
    if (typeof task !== "string" || !task) throw new TaskSchemaError("the task name must be a non-empty string");
    const id = options.taskId ?? randomUUID();
    if (typeof id !== "string" || !id) throw new TaskSchemaError("send option 'taskId' must be a non-empty string");
    const { args, kwargs } = plainCall(task, call);
    const validate = options.validate ?? this.validate;
    const contract = await this.contractFor(task, validate);
    if (validate && contract) {
      const violations = this.validator.violations(contract, args, kwargs);
      if (violations.length) throw new ValidationError(task, `arguments of ${task} break its contract`, violations);
    }
    await this.transport.publish(this.message(task, id, args, kwargs, { ...contractOptions(contract), ...defined(options) }));
    return new Handle<R>(id, task, this.backend);
  }

  async close(): Promise<void> {
    await Promise.all([this.transport.close(), this.backend?.close()]);
  }

  private async contractFor(task: string, validate: boolean): Promise<TaskContract | null> {
    if (!this.registry) {
      if (validate) throw new TaskSchemaError(`cannot validate ${task}: the producer has no registry`);
      return null;
    }
    const latest = await this.registry.latest(task);
    if (!latest && validate) {
      throw new ValidationError(
        task,
        `${task} has no contract in the registry to validate against (send with {validate: false} to publish it unchecked)`,
        [],
      );
    }
    return latest?.contract ?? null;
  }

  private message(task: string, id: string, args: Json[], kwargs: JsonObject, options: SendOptions): TaskMessage {
    const priority = options.priority;
    if (priority !== undefined && (!Number.isInteger(priority) || priority < 0 || priority > 255)) {
      throw new TaskSchemaError(`send option 'priority' must be an integer from 0 to 255, got ${String(priority)}`);
    }
    for (const name of ["softTimeLimit", "timeLimit"] as const) {
      const value = options[name];
      if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value) || value <= 0)) {
        throw new TaskSchemaError(`send option '${name}' must be a positive number of seconds, got ${String(value)}`);
      }
    }
    const queue = options.queue ?? this.defaultQueue;
    if (typeof queue !== "string" || !queue) throw new TaskSchemaError("send option 'queue' must be a non-empty string");
    return buildTaskMessage({
      task,
      id,
      args,
      kwargs,
      queue,
      priority,
      softTimeLimit: options.softTimeLimit,
      timeLimit: options.timeLimit,
      ...resolveTiming(options, new Date()),
      origin: this.origin,
      replyTo: this.replyTo,
    });
  }
}

function transportFor(options: ProducerOptions): Transport {
  const broker = options.broker;
  if (typeof broker === "string" && /^amqps?:\/\//.test(broker)) return new AmqpTransport(broker, options.queueMaxPriority);
  if (typeof broker === "string" && /^rediss?:\/\//.test(broker)) return new RedisTransport(broker);
  throw new TaskSchemaError(`broker must be an amqp:// or redis:// URL, got ${redact(String(broker))}`);
}

/** The call's args and kwargs as plain JSON, or a ValidationError naming what is not JSON. */
function plainCall(task: string, call: TaskCall): { args: Json[]; kwargs: JsonObject } {
  const { args = [], kwargs = {} } = call ?? {};
  const violations: Violation[] = [];
  if (!Array.isArray(args)) violations.push({ path: "/args", message: "args must be an array" });
  if (kwargs === null || typeof kwargs !== "object" || Array.isArray(kwargs)) {
    violations.push({ path: "/kwargs", message: "kwargs must be an object" });
  }
  if (violations.length) throw new ValidationError(task, `the call of ${task} is malformed`, violations);
  const jsonArgs = toJson(args, "/args");
  const jsonKwargs = toJson(kwargs, "/kwargs");
  violations.push(...jsonArgs.violations, ...jsonKwargs.violations);
  if (violations.length) throw new ValidationError(task, `arguments of ${task} are not plain JSON`, violations);
  return { args: jsonArgs.value as Json[], kwargs: jsonKwargs.value as JsonObject };
}

/** Contract options a producer puts on each message; the rest are the worker's to apply. */
function contractOptions(contract: TaskContract | null): SendOptions {
  const options = contract?.options ?? {};
  return defined({
    queue: options.queue,
    priority: options.priority,
    softTimeLimit: options.soft_time_limit,
    timeLimit: options.time_limit,
    expires: options.expires,
  });
}

/** `options` without the keys whose value is undefined, so they do not override. */
function defined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

class Handle<R> implements TaskHandle<R> {
  constructor(
    readonly id: string,
    private readonly task: string,
    private readonly backend: RedisResultBackend | undefined,
  ) {}

  async get({ timeoutMs, intervalMs = 100 }: GetOptions = {}): Promise<R> {
    const backend = this.backend;
    if (!backend) {
      throw new TaskSchemaError(`no result backend to read ${this.task}[${this.id}] from: pass createProducer({backend: 'redis://…'})`);
    }
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      const outcome = outcomeOf(this.task, this.id, await backend.meta(this.id));
      if (outcome.ready) return outcome.value as R;
      const left = deadline - Date.now();
      if (left <= 0) throw new TaskTimeoutError(this.id, timeoutMs ?? 0, outcome.state);
      await sleep(Math.min(intervalMs, left));
    }
  }
}
