import assert from "node:assert/strict";
import { createServer } from "node:http";
import { afterEach, beforeEach, test } from "node:test";

import { guard } from "../dist/guard.js";
import { BudgetExceeded, MarginDash } from "../dist/index.js";
import { FAST, freePort, sleep } from "./helpers.mjs";

let server;
let state;

const BOOKED = {
  "gpt-4.5-preview-2025-02-27": "gpt-4.5-preview",
  "openai/gpt-4.5-preview": "gpt-4.5-preview",
  "openai/gpt-4o-mini": "gpt-4o-mini",
};

beforeEach(async () => {
  guard.raiseInternalErrors = true;
  state = {
    version: 1,
    blocked: [
      { type: "customer", value: "over_budget" },
      { type: "feature", value: "image_generation" },
      { type: "customer_feature", value: "acme:summarize" },
      { type: "model", value: "gpt-4.5-preview" },
    ],
    requests: [],
    checks: [],
    checkStatus: 200,
  };
  server = createServer((req, res) => {
    if (req.url.startsWith("/v1/budgets/check?")) {
      // What the real server answers for `?model=`: the name events of that model are booked
      // under (the catalogue and the org's aliases decide it there).
      const name = new URL(req.url, "http://x").searchParams.get("model");
      state.checks.push(name);
      res.writeHead(state.checkStatus, { "Content-Type": "application/json" });
      const model = BOOKED[name] ?? name.trim().toLowerCase();
      return res.end(JSON.stringify({ allowed: true, blocked_by: [], model }));
    }
    state.requests.push(req.headers);
    const etag = `"v${state.version}"`;
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, { ETag: etag });
      return res.end();
    }
    res.writeHead(200, { "Content-Type": "application/json", ETag: etag });
    res.end(JSON.stringify({ version: state.version, blocked: state.blocked }));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  guard.raiseInternalErrors = false;
});

const client = (overrides = {}) =>
  new MarginDash({
    apiKey: "md_ingest",
    baseUrl: `http://127.0.0.1:${server.address().port}/v1`,
    ...FAST,
    ...overrides,
  });

test("a blocked customer throws before fn runs", async () => {
  const md = client();
  let called = false;
  await assert.rejects(
    md.guardedCall({ customerId: "over_budget", feature: "chat" }, () => {
      called = true;
    }),
    (error) => error instanceof BudgetExceeded && error.scopeType === "customer",
  );
  assert.equal(called, false);
  assert.equal(state.requests[0].authorization, "Bearer md_ingest");
});

test("each scope type blocks only its calls", async () => {
  const md = client();
  const cases = [
    [{ customerId: "acme", feature: "image_generation" }, "feature"],
    [{ customerId: "acme", feature: "summarize" }, "customer_feature"],
    [{ customerId: "acme", feature: "chat", model: "gpt-4.5-preview" }, "model"],
    [{ customerId: "acme", feature: "chat", model: "gpt-4o-mini" }, undefined],
    [{ customerId: "other", feature: "summarize" }, undefined],
  ];
  for (const [scope, blockedBy] of cases) {
    try {
      assert.equal(await md.guardedCall(scope, async () => 3), 3);
      assert.equal(blockedBy, undefined, JSON.stringify(scope));
    } catch (error) {
      assert.ok(error instanceof BudgetExceeded);
      assert.equal(error.scopeType, blockedBy);
    }
  }
});

test("a model budget blocks every spelling the server books as its model", async () => {
  for (const [model, asked] of [
    ["gpt-4.5-preview", false],
    [" GPT-4.5-Preview ", false],
    ["gpt-4.5-preview-2025-02-27", true],
    ["openai/gpt-4.5-preview", true],
  ]) {
    state.checks = [];
    const md = client();
    for (let i = 0; i < 3; i += 1) {
      await assert.rejects(
        md.guardedCall({ customerId: "acme", feature: "chat", model }, () => null),
        (error) =>
          error instanceof BudgetExceeded &&
          error.scopeType === "model" &&
          error.value === "gpt-4.5-preview",
      );
    }
    // A spelling that is not the blocked name is asked once, then remembered.
    assert.deepEqual(state.checks, asked ? [model] : []);
  }
});

test("other models pass, and nothing is asked without model budgets", async () => {
  assert.equal(await client().guardedCall({ model: "openai/gpt-4o-mini" }, () => "ok"), "ok");
  assert.deepEqual(state.checks, ["openai/gpt-4o-mini"]);
  state.blocked = [{ type: "customer", value: "over_budget" }];
  assert.equal(await client().guardedCall({ model: "openai/gpt-4.5-preview" }, () => "ok"), "ok");
  assert.deepEqual(state.checks, ["openai/gpt-4o-mini"]);
});

test("without an answer a model is only trimmed and lower-cased", async () => {
  state.checkStatus = 503;
  const md = client();
  for (let i = 0; i < 3; i += 1) {
    assert.equal(await md.guardedCall({ model: "openai/gpt-4.5-preview" }, () => "ok"), "ok");
  }
  await assert.rejects(md.guardedCall({ model: "GPT-4.5-preview" }, () => null), BudgetExceeded);
  assert.equal(state.checks.length, 1);
});

test("fn errors propagate unchanged", async () => {
  const md = client();
  const failure = new TypeError("provider said no");
  await assert.rejects(
    md.guardedCall({ customerId: "acme" }, async () => {
      throw failure;
    }),
    (error) => error === failure,
  );
});

test("cached for the TTL, then revalidated with If-None-Match", async () => {
  const md = client({ blocklistTtl: 0.2 });
  for (let i = 0; i < 20; i += 1) await md.guardedCall({ customerId: "acme" }, () => null);
  assert.equal(state.requests.length, 1);
  await sleep(250);
  await assert.rejects(md.guardedCall({ customerId: "over_budget" }, () => null), BudgetExceeded);
  assert.equal(state.requests[1]["if-none-match"], '"v1"');
  state.version = 2;
  state.blocked = [];
  await sleep(250);
  assert.equal(await md.guardedCall({ customerId: "over_budget" }, () => "ok"), "ok");
});

test("fails open when the server is unreachable", async (t) => {
  t.mock.method(console, "warn", () => {});
  const port = await freePort();
  const md = new MarginDash({ apiKey: "k", baseUrl: `http://127.0.0.1:${port}/v1`, ...FAST });
  assert.equal(await md.guardedCall({ customerId: "over_budget" }, () => "served"), "served");
});

test("an org block blocks everything", async () => {
  state.blocked = [{ type: "org", value: "org_1" }];
  await assert.rejects(client().guardedCall({ customerId: "anyone" }, () => null), BudgetExceeded);
});
