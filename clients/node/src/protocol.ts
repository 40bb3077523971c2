/**
 * Celery task protocol 2, as pure functions: headers, properties and body of one message,
 * built the way Celery's own `app.amqp.as_task_v2` and `send_task` build them.
 */
import { TaskSchemaError, type Violation } from "./errors";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export const CONTENT_TYPE = "application/json";
export const CONTENT_ENCODING = "utf-8";
/** Celery's `task_default_queue`. */
export const DEFAULT_QUEUE = "celery";
/** Celery's `argsrepr_maxsize` and `kwargsrepr_maxsize`. */
export const REPR_MAXSIZE = 1024;

/** Everything one message is made of, resolved: names, ids, arguments and timing. */
export interface MessageSpec {
  task: string;
  id: string;
  args: Json[];
  kwargs: JsonObject;
  queue: string;
  priority?: number | undefined;
  eta?: Date | undefined;
  expires?: Date | undefined;
  /** Seconds from `now` to `expires`: the AMQP per-message TTL Celery sets as `expiration`. */
  expiresInSeconds?: number | undefined;
  softTimeLimit?: number | undefined;
  timeLimit?: number | undefined;
  /** `gen<pid>@<host>`, as Celery's `anon_nodename()`. */
  origin: string;
  /** The producer's id, as Celery's `app.thread_oid`. */
  replyTo: string;
}

/** Transport-neutral properties, named as AMQP 0-9-1 names them. */
export interface MessageProperties {
  correlationId: string;
  replyTo: string;
  deliveryMode: 2;
  priority: number;
  expiration?: string;
}

/** One protocol 2 task message, ready for either transport. */
export interface TaskMessage {
  queue: string;
  contentType: typeof CONTENT_TYPE;
  contentEncoding: typeof CONTENT_ENCODING;
  headers: JsonObject;
  properties: MessageProperties;
  body: Buffer;
}

/** The message Celery 5 would send for `spec`. */
export function buildTaskMessage(spec: MessageSpec): TaskMessage {
  const headers: JsonObject = {
    lang: "py", // what the worker should treat the message as; Celery checks for 'py'
    task: spec.task,
    id: spec.id,
    shadow: null,
    eta: spec.eta ? isoformat(spec.eta) : null,
    expires: spec.expires ? isoformat(spec.expires) : null,
    group: null,
    group_index: null,
    retries: 0,
    // Celery's order: [hard, soft].
    timelimit: [spec.timeLimit ?? null, spec.softTimeLimit ?? null],
    root_id: spec.id,
    parent_id: null,
    argsrepr: saferepr(spec.args.length ? spec.args : null, "()"),
    kwargsrepr: saferepr(spec.kwargs, "{}"),
    origin: spec.origin,
    ignore_result: null,
    replaced_task_nesting: 0,
    stamped_headers: null,
    stamps: {},
  };
  const properties: MessageProperties = {
    correlationId: spec.id,
    replyTo: spec.replyTo,
    deliveryMode: 2,
    priority: spec.priority ?? 0,
  };
  if (spec.expiresInSeconds !== undefined) {
    properties.expiration = String(Math.trunc(Math.max(0, spec.expiresInSeconds) * 1000));
  }
  const body: Json = [spec.args, spec.kwargs, { callbacks: null, errbacks: null, chain: null, chord: null }];
  return {
    queue: spec.queue,
    contentType: CONTENT_TYPE,
    contentEncoding: CONTENT_ENCODING,
    headers,
    properties,
    body: Buffer.from(JSON.stringify(body), "utf8"),
  };
}

/** Python's `datetime.isoformat()` of an aware UTC datetime: `2026-01-02T03:04:05.678000+00:00`. */
export function isoformat(date: Date): string {
  const text = date.toISOString(); // 2026-01-02T03:04:05.678Z
  const ms = date.getUTCMilliseconds();
  const seconds = text.slice(0, 19);
  const year = date.getUTCFullYear();
  if (year < 1 || year > 9999) throw new TaskSchemaError(`date ${text} is outside Python's datetime range`);
  return ms ? `${seconds}.${String(ms * 1000).padStart(6, "0")}+00:00` : `${seconds}+00:00`;
}

/** Timing and limits from send options, resolved against `now` the way Celery resolves them. */
export interface Timing {
  eta?: Date | undefined;
  expires?: Date | undefined;
  expiresInSeconds?: number | undefined;
}

export function resolveTiming(
  options: { countdown?: number | undefined; eta?: Date | string | undefined; expires?: number | Date | string | undefined },
  now: Date,
): Timing {
  const timing: Timing = {};
  if (options.countdown !== undefined && options.eta !== undefined) {
    throw new TaskSchemaError("send options 'countdown' and 'eta' are mutually exclusive");
  }
  if (options.countdown !== undefined) {
    finiteNumber("countdown", options.countdown);
    // Celery ignores a zero countdown.
    if (options.countdown) timing.eta = new Date(now.getTime() + options.countdown * 1000);
  } else if (options.eta !== undefined) {
    timing.eta = toDate("eta", options.eta);
  }
  if (options.expires !== undefined) {
    if (typeof options.expires === "number") {
      finiteNumber("expires", options.expires);
      timing.expires = new Date(now.getTime() + options.expires * 1000);
      timing.expiresInSeconds = options.expires;
    } else {
      timing.expires = toDate("expires", options.expires);
      timing.expiresInSeconds = (timing.expires.getTime() - now.getTime()) / 1000;
    }
  }
  return timing;
}

function finiteNumber(name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TaskSchemaError(`send option '${name}' must be a finite number of seconds, got ${String(value)}`);
  }
}

function toDate(name: string, value: Date | string): Date {
  const date = typeof value === "string" ? new Date(value) : value;
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) {
    throw new TaskSchemaError(`send option '${name}' must be a Date or an ISO 8601 string, got ${JSON.stringify(value)}`);
  }
  return date;
}

/**
 * `value` as the plain JSON the worker will decode, with the JSON pointer of everything that
 * is not JSON: `JSON.stringify` would quietly turn NaN into null and drop undefined.
 * Dates become ISO 8601 strings (their `toJSON`), as `JSON.stringify` writes them.
 */
export function toJson(value: unknown, path = ""): { value: Json; violations: Violation[] } {
  const violations: Violation[] = [];
  const seen = new Set<object>();
  const walk = (item: unknown, where: string, inArray: boolean): Json | undefined => {
    if (item === null || typeof item === "boolean" || typeof item === "string") return item;
    if (typeof item === "number") {
      if (Number.isFinite(item)) return item;
      violations.push({ path: where, message: `${item} is not a JSON number` });
      return null;
    }
    if (item === undefined || typeof item === "function" || typeof item === "symbol") {
      if (!inArray && item === undefined) return undefined; // an omitted property, as JSON.stringify does
      violations.push({ path: where, message: `${item === undefined ? "undefined" : typeof item} is not JSON` });
      return null;
    }
    if (typeof item === "bigint") {
      violations.push({ path: where, message: "a bigint is not JSON: send it as a string or a safe integer" });
      return null;
    }
    if (typeof (item as { toJSON?: unknown }).toJSON === "function") {
      return walk((item as { toJSON: () => unknown }).toJSON(), where, inArray);
    }
    if (seen.has(item)) {
      violations.push({ path: where, message: "a circular reference is not JSON" });
      return null;
    }
    seen.add(item);
    try {
      if (Array.isArray(item)) return item.map((element, index) => walk(element, `${where}/${index}`, true) ?? null);
      const proto = Object.getPrototypeOf(item) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        const kind = (item as object).constructor?.name ?? "object";
        violations.push({ path: where, message: `a ${kind} is not plain JSON` });
        return null;
      }
      const object: JsonObject = {};
      for (const [key, element] of Object.entries(item)) {
        const converted = walk(element, `${where}/${pointerToken(key)}`, false);
        if (converted !== undefined) object[key] = converted;
      }
      return object;
    } finally {
      seen.delete(item);
    }
  };
  return { value: walk(value, path, false) ?? null, violations };
}

/** One RFC 6901 reference token. */
export function pointerToken(key: string | number): string {
  return String(key).replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * Celery's `saferepr` of decoded JSON: Python's `repr`, cut at `REPR_MAXSIZE` characters.
 * `null` stands for an empty argument list, which Celery writes as `empty`.
 */
export function saferepr(value: Json | null, empty: string): string {
  const text = value === null || (typeof value === "object" && !Array.isArray(value) && !Object.keys(value).length)
    ? empty
    : pythonRepr(value);
  return text.length > REPR_MAXSIZE ? `${text.slice(0, REPR_MAXSIZE - 3)}...` : text;
}

/** Python's `repr()` of the value `json.loads` would make of `value`. */
export function pythonRepr(value: Json): string {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return pythonNumber(value);
  if (typeof value === "string") return pythonString(value);
  if (Array.isArray(value)) return `[${value.map(pythonRepr).join(", ")}]`;
  return `{${Object.entries(value).map(([k, v]) => `${pythonString(k)}: ${pythonRepr(v)}`).join(", ")}}`;
}

function pythonNumber(value: number): string {
  // JSON.stringify writes String(value): without '.' or 'e' Python reads an int, else a float,
  // whose repr pads the exponent to two digits (1e-07).
  return String(value).replace(/e([+-])(\d)$/, (_, sign: string, digit: string) => `e${sign}0${digit}`);
}

function pythonString(value: string): string {
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  let out = quote;
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (char === "\\" || char === quote) out += `\\${char}`;
    else if (char === "\n") out += "\\n";
    else if (char === "\r") out += "\\r";
    else if (char === "\t") out += "\\t";
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0)) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += char;
  }
  return out + quote;
}

/** Where messages go: one broker connection. */
export interface Transport {
  publish(message: TaskMessage): Promise<void>;
  close(): Promise<void>;
}
