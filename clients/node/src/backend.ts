/**
 * Reading task results from Celery's Redis result backend.
 *
 * Celery stores each task's state under `celery-task-meta-<id>` as JSON
 * (`{status, result, traceback, children, date_done, task_id}`) and also announces it on a
 * pubsub channel of the same name; polling the key is enough and survives reconnects.
 */
import { Redis } from "ioredis";

import {
  BrokerError,
  ContractViolationError,
  TaskFailedError,
  type ContractViolationDetail,
  type TaskFailure,
  type Violation,
} from "./errors";

/** What Celery stores for a task. */
export interface ResultMeta {
  status: string;
  result: unknown;
  traceback?: string | null;
  task_id?: string;
  date_done?: string | null;
}

/** Celery's states after which nothing changes (`celery.states.READY_STATES`). */
export const READY_STATES: ReadonlySet<string> = new Set(["SUCCESS", "FAILURE", "REVOKED"]);

export function resultKey(taskId: string): string {
  return `celery-task-meta-${taskId}`;
}

/** The outcome a stored meta stands for: not ready yet, a value, or the error `get()` rejects with. */
export type Outcome = { ready: false; state: string } | { ready: true; value: unknown };

export function outcomeOf(task: string, taskId: string, meta: ResultMeta | null): Outcome {
  if (meta === null) return { ready: false, state: "PENDING" };
  if (meta.status === "SUCCESS") return { ready: true, value: meta.result };
  if (!READY_STATES.has(meta.status)) return { ready: false, state: meta.status };
  throw failureError(task, taskId, meta);
}

/** The typed error for a FAILURE or REVOKED meta. */
export function failureError(task: string, taskId: string, meta: ResultMeta): TaskFailedError {
  const result = meta.result !== null && typeof meta.result === "object" ? (meta.result as Record<string, unknown>) : {};
  const failure: TaskFailure = {
    taskId,
    task,
    state: meta.status,
    excType: typeof result["exc_type"] === "string" ? result["exc_type"] : "UnknownError",
    excModule: typeof result["exc_module"] === "string" ? result["exc_module"] : null,
    excMessage: "exc_message" in result ? result["exc_message"] : meta.result,
    traceback: typeof meta.traceback === "string" ? meta.traceback : null,
  };
  const detail = failure.excType === "ContractViolation" ? contractViolation(failure.excMessage) : null;
  return detail ? new ContractViolationError(failure, detail) : new TaskFailedError(failure);
}

/** The worker's structured refusal: `exc_message` is `[{error, message, task, violations}]`. */
function contractViolation(excMessage: unknown): ContractViolationDetail | null {
  const error = Array.isArray(excMessage) ? (excMessage[0] as unknown) : excMessage;
  if (error === null || typeof error !== "object") return null;
  const fields = error as Record<string, unknown>;
  const violations: Violation[] = Array.isArray(fields["violations"])
    ? (fields["violations"] as unknown[]).map((v) => {
        const item = (v ?? {}) as Record<string, unknown>;
        return { path: String(item["path"] ?? ""), message: String(item["message"] ?? "") };
      })
    : [];
  return {
    error: typeof fields["error"] === "string" ? fields["error"] : "contract-violation",
    message: typeof fields["message"] === "string" ? fields["message"] : "contract violation",
    task: typeof fields["task"] === "string" ? fields["task"] : null,
    violations,
  };
}

/** Celery's Redis result backend (`redis://host:port/db`), read by polling. */
export class RedisResultBackend {
  private readonly client: Redis;
  private lastError: Error | undefined;

  constructor(readonly url: string) {
    this.client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    this.client.on("error", (error: Error) => {
      this.lastError = error;
    });
  }

  /** The stored meta of `taskId`, or null while Celery has stored nothing (PENDING). */
  async meta(taskId: string): Promise<ResultMeta | null> {
    let raw: string | null;
    try {
      raw = await this.client.get(resultKey(taskId));
    } catch (error) {
      const cause = this.lastError ?? error;
      throw new BrokerError(`result backend ${redact(this.url)} failed: ${messageOf(cause)}`, { cause });
    }
    if (raw === null) return null;
    try {
      return JSON.parse(raw) as ResultMeta;
    } catch (error) {
      throw new BrokerError(
        `result of ${taskId} in ${redact(this.url)} is not JSON: set result_serializer = "json" on the Celery app`,
        { cause: error },
      );
    }
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }
}

export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === "wait" || client.status === "end") {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

/** A broker or backend URL with its password hidden, for error messages. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return url;
  }
}

/** An error's message without the `Error: ` prefix `String()` adds. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
