/** Every error taskschema throws on purpose is a `TaskSchemaError`. */

/** One reason a call was refused: where (a JSON pointer into the call) and why. */
export interface Violation {
  readonly path: string;
  readonly message: string;
}

/** Base class of every error taskschema throws on purpose. */
export class TaskSchemaError extends Error {
  override name = "TaskSchemaError";
}

function listed(message: string, violations: readonly Violation[]): string {
  const detail = violations.map((v) => `  ${v.path || "/"}: ${v.message}`).join("\n");
  return detail ? `${message}\n${detail}` : message;
}

/** A call refused before publishing: it breaks the task's contract, or is not plain JSON. */
export class ValidationError extends TaskSchemaError {
  override name = "ValidationError";
  readonly task: string;
  readonly violations: readonly Violation[];

  constructor(task: string, message: string, violations: readonly Violation[]) {
    super(listed(message, violations));
    this.task = task;
    this.violations = violations;
  }
}

/** What the result backend holds about a failed task, as Celery stored it. */
export interface TaskFailure {
  readonly taskId: string;
  readonly task: string;
  /** `FAILURE` or `REVOKED`. */
  readonly state: string;
  /** The exception's class name, e.g. `ValueError` or `ContractViolation`. */
  readonly excType: string;
  readonly excModule: string | null;
  /** The exception's arguments as stored (a JSON array for Celery's JSON results). */
  readonly excMessage: unknown;
  readonly traceback: string | null;
}

/** The task ran and raised, or was revoked: `get()` rejects with this. */
export class TaskFailedError extends TaskSchemaError implements TaskFailure {
  override name = "TaskFailedError";
  readonly taskId: string;
  readonly task: string;
  readonly state: string;
  readonly excType: string;
  readonly excModule: string | null;
  readonly excMessage: unknown;
  readonly traceback: string | null;

  constructor(failure: TaskFailure, message?: string) {
    super(message ?? `${failure.task}[${failure.taskId}] ${failure.state}: ${failure.excType}: ${describe(failure.excMessage)}`);
    this.taskId = failure.taskId;
    this.task = failure.task;
    this.state = failure.state;
    this.excType = failure.excType;
    this.excModule = failure.excModule;
    this.excMessage = failure.excMessage;
    this.traceback = failure.traceback;
  }
}

/** The structured error a taskschema worker stores when it refuses a call or a return value. */
export interface ContractViolationDetail {
  /** Why, as a stable code: `contract-violation`, `return-violation`, `signature`, `no-contract`, ... */
  readonly error: string;
  readonly message: string;
  readonly task: string | null;
  readonly violations: readonly Violation[];
}

/** The worker refused the call (or the task's return value) against its contract. */
export class ContractViolationError extends TaskFailedError {
  override name = "ContractViolationError";
  readonly reason: string;
  readonly violations: readonly Violation[];
  readonly detail: ContractViolationDetail;

  constructor(failure: TaskFailure, detail: ContractViolationDetail) {
    super(failure, listed(`${failure.task}[${failure.taskId}] refused by the worker: ${detail.message}`, detail.violations));
    this.reason = detail.error;
    this.violations = detail.violations;
    this.detail = detail;
  }
}

/** `get()` waited `timeoutMs` without the task finishing. */
export class TaskTimeoutError extends TaskSchemaError {
  override name = "TaskTimeoutError";
  readonly taskId: string;
  readonly timeoutMs: number;
  /** The last state seen: `PENDING` while nothing was stored, `STARTED`, `RETRY`, ... */
  readonly state: string;

  constructor(taskId: string, timeoutMs: number, state: string) {
    super(`no result for task ${taskId} after ${timeoutMs} ms (state ${state})`);
    this.taskId = taskId;
    this.timeoutMs = timeoutMs;
    this.state = state;
  }
}

/** The registry answered with an error, or could not be reached. */
export class RegistryError extends TaskSchemaError {
  override name = "RegistryError";
  /** The HTTP status, or null when the registry could not be reached. */
  readonly status: number | null;
  /** The registry's stable error code (`task_not_found`, ...), or `registry_unavailable`. */
  readonly code: string;

  constructor(message: string, status: number | null, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
    this.code = code;
  }
}

/** The broker or the result backend could not be reached or refused an operation. */
export class BrokerError extends TaskSchemaError {
  override name = "BrokerError";
}

function describe(value: unknown): string {
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === "string") return value[0];
  if (typeof value === "string") return value;
  return JSON.stringify(value) ?? String(value);
}
