/**
 * Checking a call against a task contract before it is published, the way the worker's
 * decoder checks it: positional arguments bind to `params` by property order, omitted
 * parameters take their defaults, and the one params object is validated (JSON Schema
 * 2020-12, formats asserted).
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from "ajv/dist/2020";
import addFormats from "ajv-formats";

import type { Violation } from "./errors";
import { pointerToken, type Json, type JsonObject } from "./protocol";

/** Celery options a contract declares. Producers apply queue, priority, time limits and expiry. */
export interface ContractOptions {
  queue?: string;
  routing_key?: string;
  priority?: number;
  soft_time_limit?: number;
  time_limit?: number;
  expires?: number;
  [other: string]: unknown;
}

/** A task contract, as the registry serves it. */
export interface TaskContract {
  task: string;
  description?: string;
  params: { type?: "object"; properties?: Record<string, unknown>; [keyword: string]: unknown };
  returns: unknown;
  $defs?: Record<string, unknown>;
  options?: ContractOptions;
}

/** The parameter names of `contract`, in positional order. */
export function parameterNames(contract: TaskContract): string[] {
  return Object.keys(contract.params.properties ?? {});
}

/**
 * Map positional and keyword arguments onto one params object, as Python binds a call.
 * Surplus positional arguments and a parameter given twice are violations.
 */
export function bindCall(contract: TaskContract, args: readonly Json[], kwargs: JsonObject): { params: JsonObject; violations: Violation[] } {
  const names = parameterNames(contract);
  const violations: Violation[] = [];
  if (args.length > names.length) {
    violations.push({
      path: "",
      message: `${contract.task} takes ${names.length} positional argument(s) but ${args.length} were given`,
    });
  }
  const params: JsonObject = {};
  names.slice(0, args.length).forEach((name, index) => {
    params[name] = args[index] as Json;
  });
  for (const [name, value] of Object.entries(kwargs)) {
    if (Object.hasOwn(params, name)) {
      violations.push({ path: `/${pointerToken(name)}`, message: `got multiple values for argument '${name}'` });
    } else {
      params[name] = value;
    }
  }
  return { params, violations };
}

/** `params` with every omitted parameter that declares a `default` set to a copy of it. */
export function withDefaults(contract: TaskContract, params: JsonObject): JsonObject {
  const filled: JsonObject = { ...params };
  for (const [name, schema] of Object.entries(contract.params.properties ?? {})) {
    if (!Object.hasOwn(filled, name) && schema !== null && typeof schema === "object" && "default" in schema) {
      filled[name] = structuredClone((schema as { default: Json }).default);
    }
  }
  return filled;
}

/** `params` as a standalone schema, with the contract's `$defs` at its root (so `#/$defs/X` resolves). */
export function bundledParams(contract: TaskContract): object | boolean {
  const params = contract.params as object | boolean;
  if (typeof params === "boolean" || !contract.$defs) return params;
  return { ...params, $defs: contract.$defs };
}

/** Ajv errors as violations at JSON pointers into the call, sorted and without duplicates. */
export function violationsOf(errors: readonly ErrorObject[]): Violation[] {
  const found = new Map<string, Violation>();
  for (const error of errors) {
    const violation = { path: error.instancePath, message: messageOf(error) };
    found.set(`${violation.path}\u0000${violation.message}`, violation);
  }
  return [...found.values()].sort((a, b) => (a.path === b.path ? cmp(a.message, b.message) : cmp(a.path, b.path)));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function messageOf(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties":
      return `unexpected property '${String(params["additionalProperty"])}'`;
    case "required":
      return `'${String(params["missingProperty"])}' is a required property`;
    case "enum":
      return `must be one of ${JSON.stringify(params["allowedValues"])}`;
    case "const":
      return `must be ${JSON.stringify(params["allowedValue"])}`;
    default:
      return error.message ?? `fails '${error.keyword}'`;
  }
}

/** Compiles contracts (once each) and checks calls against them. */
export class CallValidator {
  private readonly ajv: Ajv2020;
  private readonly compiled = new WeakMap<TaskContract, ValidateFunction>();

  constructor() {
    // strict: false because contracts may carry annotations and x-* extensions.
    this.ajv = new Ajv2020({ allErrors: true, strict: false, logger: false });
    addFormats(this.ajv);
  }

  /** Every way the call breaks `contract`'s params; empty when it is valid. */
  violations(contract: TaskContract, args: readonly Json[], kwargs: JsonObject): Violation[] {
    const bound = bindCall(contract, args, kwargs);
    if (bound.violations.length) return bound.violations;
    const validate = this.compile(contract);
    if (validate(withDefaults(contract, bound.params))) return [];
    return violationsOf(validate.errors ?? []);
  }

  private compile(contract: TaskContract): ValidateFunction {
    let validate = this.compiled.get(contract);
    if (!validate) {
      validate = this.ajv.compile(bundledParams(contract));
      this.compiled.set(contract, validate);
    }
    return validate;
  }
}
