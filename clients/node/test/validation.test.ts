import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

import type { TaskContract } from "../src";
import { bindCall, CallValidator, withDefaults } from "../src/validation";

// The contract the Python worker tests enforce (tests/contracts/demo.greet.json).
const GREET = JSON.parse(
  readFileSync(join(__dirname, "..", "..", "..", "..", "tests", "contracts", "demo.greet.json"), "utf8"),
) as TaskContract;
const ADA = { name: "Ada", born: "1990-01-01T00:00:00Z" };

describe("bindCall", () => {
  it("binds positional arguments by the order of params.properties", () => {
    assert.deepEqual(bindCall(GREET, [ADA, 2], { shout: true }), {
      params: { person: ADA, times: 2, shout: true },
      violations: [],
    });
  });

  it("refuses surplus positional arguments and a parameter given twice", () => {
    assert.deepEqual(bindCall(GREET, [ADA, 1, false, "extra"], {}).violations, [
      { path: "", message: "demo.greet takes 3 positional argument(s) but 4 were given" },
    ]);
    assert.deepEqual(bindCall(GREET, [ADA], { person: ADA }).violations, [
      { path: "/person", message: "got multiple values for argument 'person'" },
    ]);
  });

  it("fills defaults into a copy", () => {
    const params = { person: ADA };
    assert.deepEqual(withDefaults(GREET, params), { person: ADA, times: 1, shout: false });
    assert.deepEqual(params, { person: ADA });
  });
});

describe("CallValidator", () => {
  const validator = new CallValidator();

  it("accepts valid calls, keyword, positional and mixed", () => {
    assert.deepEqual(validator.violations(GREET, [], { person: ADA, times: 3 }), []);
    assert.deepEqual(validator.violations(GREET, [ADA, 2, true], {}), []);
    assert.deepEqual(validator.violations(GREET, [{ ...ADA, email: null }], { shout: true }), []);
  });

  it("lists every violation at its JSON pointer, $defs resolved and formats asserted", () => {
    const violations = validator.violations(GREET, [], { person: { name: "", born: "yesterday", nick: "x" }, times: 9 });
    assert.deepEqual(
      violations.map((v) => v.path),
      ["/person", "/person/born", "/person/name", "/times"],
    );
    assert.match(violations[0]?.message ?? "", /unexpected property 'nick'/);
    assert.match(violations[1]?.message ?? "", /date-time/);
  });

  it("validates positional arguments at their parameter's path", () => {
    const violations = validator.violations(GREET, [ADA, "two"], {});
    assert.deepEqual(violations, [{ path: "/times", message: "must be integer" }]);
  });

  it("checks defaults-filled calls, so a missing required parameter is named", () => {
    assert.deepEqual(validator.violations(GREET, [], { times: 2 }), [{ path: "", message: "'person' is a required property" }]);
  });

  it("ignores annotations and x- extensions it does not know", () => {
    const contract: TaskContract = {
      task: "t.x",
      params: { type: "object", properties: { n: { type: "integer", "x-unit": "ms", examples: [1] } }, required: ["n"] },
      returns: true,
    };
    assert.deepEqual(validator.violations(contract, [1], {}), []);
    assert.deepEqual(validator.violations(contract, ["1"], {}), [{ path: "/n", message: "must be integer" }]);
  });
});
