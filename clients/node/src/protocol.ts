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
    argsrepr: saferepr(spec.args, "()"),
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
    body: Buffer.from(pythonJson(body), "utf8"),
  };
}

/**
 * `value` as Python's `json.dumps` writes it, which is how kombu serializes Celery's
 * messages: `", "` and `": "` separators, everything outside printable ASCII escaped
 * (`\u00e9`, surrogate pairs), floats as Python's `repr`. The bytes Node sends are then the
 * bytes Celery sends for the same call.
 */
export function pythonJson(value: Json): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") return pythonStr(value);
  if (typeof value === "string") return pythonJsonString(value);
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  return `{${Object.entries(value)
    .map(([key, item]) => `${pythonJsonString(key)}: ${pythonJson(item)}`)
    .join(", ")}}`;
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

function pythonJsonString(text: string): string {
  // UTF-16 code units: a character outside the BMP becomes its surrogate pair, as in Python.
  return `"${text.replace(/[^ -~]|["\\]/g, (unit) => SHORT_ESCAPES[unit] ?? `\\u${unit.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`;
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

/** Celery's `task_repr_maxlevels`. */
export const REPR_MAXLEVELS = 3;

interface Literal {
  kind: "literal";
  value: string;
  truncate: boolean;
  direction: number;
}
/** A dict key, printed by a nested `saferepr` call. */
interface Key {
  kind: "key";
  value: string;
}
/** A JSON value, wrapped so objects with a `kind` key cannot pass for tokens. */
interface Value {
  kind: "value";
  value: Json;
}
type Item = Literal | Key | Value;
type Token = Literal | Key | { kind: "quoted"; value: string } | { kind: "text"; value: string };

const literal = (value: string, truncate: boolean, direction: number): Literal => ({ kind: "literal", value, truncate, direction });
const DICT_START = literal("{", false, +1);
const DICT_KVSEP = literal(": ", true, 0);
const DICT_END = literal("}", false, -1);
const LIST_START = literal("[", false, +1);
const LIST_END = literal("]", false, -1);
const LIST_SEP = literal(", ", true, 0);

/**
 * Celery's `saferepr(value, 1024, maxlevels=3)` of the value Python decodes from the JSON:
 * how `argsrepr` and `kwargsrepr` are written. Not Python's `repr`: strings are single-quoted
 * with only `'` escaped, containers nested 3 deep print as `[...]`, and past 1024 characters
 * the rest is cut with `, ...` and the open brackets closed. `empty` is what an empty value
 * prints as (Celery sends empty args as the tuple `()`).
 */
export function saferepr(value: Json, empty: string, maxlen = REPR_MAXSIZE, maxlevels = REPR_MAXLEVELS): string {
  if (Array.isArray(value) ? !value.length : value !== null && typeof value === "object" && !Object.keys(value).length) {
    return empty;
  }
  return streamRepr(value, maxlen, maxlevels);
}

function streamRepr(value: Json, maxlen: number, maxlevels: number): string {
  return [...reprChunks(value, maxlen, maxlevels)].join("");
}

/** A port of Celery's `_saferepr`. */
function* reprChunks(value: Json, maxlen: number, maxlevels: number): Generator<string> {
  const stack: Iterator<Item>[] = [iterate([{ kind: "value", value }])];
  let left = maxlen;
  for (const [token, rest] of reprTokens(stack, maxlevels)) {
    if (left <= 0) {
      if (token.kind === "literal" && token.direction < 0) {
        yield token.value; // the cut value was the last of its container: just close it
        continue;
      }
      yield ", ...";
      // Only brackets matter from here on: put the token back if it is one.
      stack.push(chain(token.kind === "literal" ? [token] : [], rest));
      break;
    }
    let text: string;
    if (token.kind === "literal") text = token.value;
    else if (token.kind === "key") text = streamRepr(token.value, left, maxlevels);
    else if (token.kind === "quoted") text = `'${truncate(token.value, left).replaceAll("'", "\\'")}'`;
    else text = truncate(token.value, left);
    yield text;
    left -= codePoints(text);
  }
  // Past the limit: close what is open, skip containers not yet opened.
  let depth = 0;
  for (const rest of stack) {
    for (const item of iterate(rest)) {
      if (item.kind === "literal" && !item.truncate) {
        depth += item.direction;
        if (depth < 0) {
          depth = 0;
          yield item.value;
        }
      }
    }
  }
}

/** A port of Celery's `reprstream`: tokens, each with the iterator the rest comes from. */
function* reprTokens(stack: Iterator<Item>[], maxlevels: number): Generator<[Token, Iterator<Item>]> {
  let level = 0;
  while (stack.length) {
    const it = stack.shift() as Iterator<Item>;
    for (const item of iterate(it)) {
      if (item.kind === "literal") {
        level += item.direction;
        yield [item, it];
        continue;
      }
      if (item.kind === "key") {
        yield [item, it];
        continue;
      }
      const value = item.value;
      if (typeof value === "number" || typeof value === "boolean") {
        yield [{ kind: "text", value: pythonStr(value) }, it];
      } else if (typeof value === "string") {
        yield [{ kind: "quoted", value }, it];
      } else if (value === null) {
        yield [{ kind: "text", value: "None" }, it];
      } else {
        const [start, end, inner] = Array.isArray(value)
          ? [LIST_START, LIST_END, chainList(value)]
          : [DICT_START, DICT_END, chainDict(value)];
        if (maxlevels && level >= maxlevels) {
          // One literal, so the length limit cannot cut it and leave a bracket open.
          yield [literal(`${start.value}...${end.value}`, false, 0), it];
          continue;
        }
        stack.push(chain([start], inner, [end], it));
        break;
      }
    }
  }
}

function* chainList(items: Json[]): Generator<Item> {
  for (let i = 0; i < items.length; i++) {
    yield { kind: "value", value: items[i] as Json };
    if (i < items.length - 1) yield LIST_SEP;
  }
}

function* chainDict(object: JsonObject): Generator<Item> {
  const entries = Object.entries(object);
  for (let i = 0; i < entries.length; i++) {
    const [key, value] = entries[i] as [string, Json];
    yield { kind: "key", value: key };
    yield DICT_KVSEP;
    yield { kind: "value", value };
    if (i < entries.length - 1) yield LIST_SEP;
  }
}

function* chain(...parts: (Iterable<Item> | Iterator<Item>)[]): Generator<Item> {
  for (const part of parts) yield* iterate(part);
}

/** Iterate without closing the iterator on `break`, as Python's `for` leaves it resumable. */
function* iterate(items: Iterable<Item> | Iterator<Item>): Generator<Item> {
  const it = Symbol.iterator in items ? (items as Iterable<Item>)[Symbol.iterator]() : (items as Iterator<Item>);
  for (let next = it.next(); !next.done; next = it.next()) yield next.value;
}

/** Celery's `truncate`: at `maxlen` characters, back to the last space, then `...`. */
function truncate(text: string, maxlen: number): string {
  const chars = Array.from(text);
  if (maxlen && chars.length >= maxlen) {
    const head = chars.slice(0, maxlen).join("");
    const space = head.lastIndexOf(" ");
    return `${space >= 0 ? head.slice(0, space) : head}...`;
  }
  return text;
}

function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** Python's `str()` of the number or bool `json.loads` makes of this JSON value. */
export function pythonStr(value: number | boolean): string {
  if (typeof value === "boolean") return value ? "True" : "False";
  const text = String(value); // what JSON.stringify writes
  if (!/[.e]/.test(text)) return text; // Python reads an int
  // A float: Python's repr has the same shortest round-trip digits as JavaScript, but
  // switches to exponent notation outside 1e-4 <= |x| < 1e16 and pads the exponent.
  const [mantissa = "", exponentText = "0"] = Math.abs(value).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const exponent = Number(exponentText);
  const point = exponent + 1; // where the decimal point falls in `digits`
  const sign = value < 0 ? "-" : "";
  if (point > -4 && point <= 16) {
    if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  const head = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${head}e${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
}

/** Where messages go: one broker connection. */
export interface Transport {
  publish(message: TaskMessage): Promise<void>;
  close(): Promise<void>;
}
