import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ContractViolationError, TaskFailedError } from "../src";
import { outcomeOf, resultKey } from "../src/backend";

const ID = "b497b2dd-f762-4b02-a3bc-1543e940c8ba";

describe("outcomeOf", () => {
  it("is pending while nothing is stored and while the task runs or retries", () => {
    assert.deepEqual(outcomeOf("demo.greet", ID, null), { ready: false, state: "PENDING" });
    assert.deepEqual(outcomeOf("demo.greet", ID, { status: "STARTED", result: { pid: 1 } }), { ready: false, state: "STARTED" });
    assert.deepEqual(outcomeOf("demo.greet", ID, { status: "RETRY", result: null }), { ready: false, state: "RETRY" });
  });

  it("returns the stored value on SUCCESS", () => {
    assert.deepEqual(outcomeOf("demo.greet", ID, { status: "SUCCESS", result: { text: "hi" } }), {
      ready: true,
      value: { text: "hi" },
    });
  });

  it("turns the worker's ContractViolation into a ContractViolationError with its violations", () => {
    // What taskschema's worker stores for a refused call (see tests/test_worker.py).
    const violations = [{ path: "/times", message: "9 is greater than the maximum of 5" }];
    const stored = {
      status: "FAILURE",
      result: {
        exc_type: "ContractViolation",
        exc_module: "taskschema._exceptions",
        exc_message: [{ error: "contract-violation", message: "arguments of demo.greet break its contract", task: "demo.greet", violations }],
      },
      traceback: null,
    };
    assert.throws(
      () => outcomeOf("demo.greet", ID, stored),
      (error: unknown) => {
        assert.ok(error instanceof ContractViolationError);
        assert.ok(error instanceof TaskFailedError);
        assert.equal(error.reason, "contract-violation");
        assert.deepEqual(error.violations, violations);
        assert.equal(error.taskId, ID);
        assert.match(error.message, /\/times: 9 is greater than the maximum of 5/);
        return true;
      },
    );
  });

  it("turns a plain exception into a TaskFailedError naming it", () => {
    const stored = {
      status: "FAILURE",
      result: { exc_type: "ValueError", exc_module: "builtins", exc_message: ["no such order"] },
      traceback: "Traceback (most recent call last): ...",
    };
    assert.throws(
      () => outcomeOf("orders.ship", ID, stored),
      (error: unknown) => {
        assert.ok(error instanceof TaskFailedError && !(error instanceof ContractViolationError));
        assert.equal(error.excType, "ValueError");
        assert.equal(error.excModule, "builtins");
        assert.deepEqual(error.excMessage, ["no such order"]);
        assert.equal(error.message, `orders.ship[${ID}] FAILURE: ValueError: no such order`);
        assert.match(error.traceback ?? "", /Traceback/);
        return true;
      },
    );
  });

  it("rejects a revoked task", () => {
    const stored = { status: "REVOKED", result: { exc_type: "TaskRevokedError", exc_module: "celery.exceptions", exc_message: ["revoked"] } };
    assert.throws(() => outcomeOf("demo.greet", ID, stored), (error: unknown) => error instanceof TaskFailedError && error.state === "REVOKED");
  });
});

describe("resultKey", () => {
  it("is Celery's key", () => assert.equal(resultKey(ID), `celery-task-meta-${ID}`));
});
