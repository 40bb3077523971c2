import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { TaskSchemaError } from "../src";
import { buildTaskMessage, isoformat, resolveTiming, saferepr, toJson, type Json, type MessageSpec } from "../src/protocol";

const ID = "25e718fc-0bf3-4f18-b75d-47a6de4389ac";
const NOW = new Date("2026-11-22T07:55:30.617Z");

function spec(overrides: Partial<MessageSpec> = {}): MessageSpec {
  return {
    task: "demo.greet",
    id: ID,
    args: [{ name: "Ada" }],
    kwargs: { times: 2 },
    queue: "demo",
    origin: "gen10310@vm",
    replyTo: "75ce4bd5-cb10-32b1-a274-812e24c5fed3",
    ...overrides,
  };
}

describe("buildTaskMessage", () => {
  it("writes the headers Celery 5's send_task writes", () => {
    // Copied from `app.send_task("demo.greet", args=[{"name": "Ada"}], kwargs={"times": 2},
    // priority=5, time_limit=10, soft_time_limit=5, expires=60, countdown=3)`.
    const message = buildTaskMessage(
      spec({ priority: 5, timeLimit: 10, softTimeLimit: 5, ...resolveTiming({ countdown: 3, expires: 60 }, NOW) }),
    );
    assert.deepEqual(message.headers, {
      lang: "py",
      task: "demo.greet",
      id: ID,
      shadow: null,
      eta: "2026-11-22T07:55:33.617000+00:00",
      expires: "2026-11-22T07:56:30.617000+00:00",
      group: null,
      group_index: null,
      retries: 0,
      timelimit: [10, 5],
      root_id: ID,
      parent_id: null,
      argsrepr: "[{'name': 'Ada'}]",
      kwargsrepr: "{'times': 2}",
      origin: "gen10310@vm",
      ignore_result: null,
      replaced_task_nesting: 0,
      stamped_headers: null,
      stamps: {},
    });
    assert.deepEqual(message.properties, {
      correlationId: ID,
      replyTo: "75ce4bd5-cb10-32b1-a274-812e24c5fed3",
      deliveryMode: 2,
      priority: 5,
      expiration: "60000",
    });
    assert.equal(message.contentType, "application/json");
    assert.equal(message.contentEncoding, "utf-8");
    assert.equal(message.queue, "demo");
  });

  it("writes the body [args, kwargs, embed] byte for byte as Python's json.dumps (kombu) does", () => {
    const message = buildTaskMessage(spec({ args: ["Grüße ✓ 𝄞", 1e-7, 0.5, 1e16, 'tab\there "q" \\ \x7f'], kwargs: {} }));
    assert.equal(
      message.body.toString("utf8"),
      String.raw`[["Gr\u00fc\u00dfe \u2713 \ud834\udd1e", 1e-07, 0.5, 10000000000000000, "tab\there \"q\" \\ \u007f"], {}, ` +
        `{"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`,
    );
    assert.deepEqual(JSON.parse(message.body.toString("utf8")), [
      ["Grüße ✓ 𝄞", 1e-7, 0.5, 1e16, 'tab\there "q" \\ \x7f'],
      {},
      { callbacks: null, errbacks: null, chain: null, chord: null },
    ]);
  });

  it("leaves optional headers null and priority 0 when nothing is set, as Celery does", () => {
    const message = buildTaskMessage(spec({ args: [], kwargs: {} }));
    assert.equal(message.headers["eta"], null);
    assert.equal(message.headers["expires"], null);
    assert.deepEqual(message.headers["timelimit"], [null, null]);
    assert.equal(message.headers["argsrepr"], "()");
    assert.equal(message.headers["kwargsrepr"], "{}");
    assert.equal(message.properties.priority, 0);
    assert.equal("expiration" in message.properties, false);
  });

  it("puts the hard time limit first", () => {
    const message = buildTaskMessage(spec({ softTimeLimit: 1.5 }));
    assert.deepEqual(message.headers["timelimit"], [null, 1.5]);
  });
});

describe("resolveTiming", () => {
  it("turns countdown into an eta and expires seconds into a moment and a TTL", () => {
    const timing = resolveTiming({ countdown: 10, expires: 2.5 }, NOW);
    assert.equal(timing.eta?.toISOString(), "2026-11-22T07:55:40.617Z");
    assert.equal(timing.expires?.toISOString(), "2026-11-22T07:55:33.117Z");
    assert.equal(timing.expiresInSeconds, 2.5);
  });

  it("takes eta and expires as dates or ISO strings", () => {
    const timing = resolveTiming({ eta: "2026-11-22T08:00:00Z", expires: new Date("2026-11-22T07:56:30.617Z") }, NOW);
    assert.equal(timing.eta?.toISOString(), "2026-11-22T08:00:00.000Z");
    assert.equal(timing.expiresInSeconds, 60);
  });

  it("clamps a TTL in the past to 0, as Celery does", () => {
    const message = buildTaskMessage(spec(resolveTiming({ expires: "2026-11-22T07:00:00Z" }, NOW)));
    assert.equal(message.properties.expiration, "0");
  });

  it("refuses unreadable moments and countdown together with eta", () => {
    assert.throws(() => resolveTiming({ eta: "tomorrow" }, NOW), /'eta' must be a Date or an ISO 8601 string/);
    assert.throws(() => resolveTiming({ expires: Number.NaN }, NOW), TaskSchemaError);
    assert.throws(() => resolveTiming({ countdown: 1, eta: NOW }, NOW), /mutually exclusive/);
  });
});

describe("isoformat", () => {
  it("writes Python's datetime.isoformat of an aware UTC datetime", () => {
    assert.equal(isoformat(new Date("2026-01-02T03:04:05.678Z")), "2026-01-02T03:04:05.678000+00:00");
    assert.equal(isoformat(new Date("2026-01-02T03:04:05.001Z")), "2026-01-02T03:04:05.001000+00:00");
    assert.equal(isoformat(new Date("2026-01-02T03:04:05Z")), "2026-01-02T03:04:05+00:00");
  });
});

describe("saferepr", () => {
  // Each expected value is what celery.utils.saferepr.saferepr(value, 1024, maxlevels=3) writes;
  // tests/test_node_client.py compares the two on generated values.
  it("writes what Celery's saferepr writes for decoded JSON", () => {
    const cases: [Json, string][] = [
      [[null, true, false, 3, 1.5, 1e-7, 1e21], "[None, True, False, 3, 1.5, 1e-07, 1e+21]"],
      [["it's", 'say "hi"', "a\\b\nc", "Grüße"], "['it\\'s', 'say \"hi\"', 'a\\b\nc', 'Grüße']"],
      [[{ a: { b: [1, { c: 2 }] } }], "[{'a': {'b': [...]}}]"],
      [[{ a: null, "b c": [true] }], "[{'a': None, 'b c': [True]}]"],
    ];
    for (const [value, expected] of cases) assert.equal(saferepr(value, "()"), expected, JSON.stringify(value));
  });

  it("writes empty args as Celery's empty tuple", () => {
    assert.equal(saferepr([], "()"), "()");
    assert.equal(saferepr({}, "{}"), "{}");
  });

  it("cuts at 1024 characters, back to a space, and closes what is open", () => {
    const words = saferepr([["word ".repeat(300)]], "()");
    assert.equal(words, `[['${"word ".repeat(203)}word...']]`);
    const numbers = saferepr([Array.from({ length: 400 }, (_, i) => i)], "()");
    assert.ok(numbers.endsWith("224, 225, 22..., ...]]"), numbers.slice(-40));
  });
});

describe("toJson", () => {
  it("passes plain JSON through and turns dates into ISO strings", () => {
    const { value, violations } = toJson({ a: [1, "x", null, { b: false }], when: new Date("2026-01-01T00:00:00Z"), skip: undefined });
    assert.deepEqual(violations, []);
    assert.deepEqual(value, { a: [1, "x", null, { b: false }], when: "2026-01-01T00:00:00.000Z" });
  });

  it("names everything that is not JSON by its JSON pointer", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    const { violations } = toJson(
      { n: Number.NaN, big: 10n, list: [undefined, () => 1], "a/b": new Map(), cyclic },
      "/kwargs",
    );
    assert.deepEqual(
      violations.map((v) => v.path),
      ["/kwargs/n", "/kwargs/big", "/kwargs/list/0", "/kwargs/list/1", "/kwargs/a~1b", "/kwargs/cyclic/self"],
    );
  });

  it("accepts the same object twice when it is not a cycle", () => {
    const shared = { x: 1 };
    assert.deepEqual(toJson([shared, shared]).violations, []);
  });
});
