import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterEach, beforeEach, test } from "node:test";
import { fileURLToPath } from "node:url";

import { guard } from "../dist/guard.js";
import { MarginDash } from "../dist/index.js";
import { FAST, freePort, sleep, startIngest } from "./helpers.mjs";

let ingest;
const clients = [];

function client(overrides = {}) {
  const made = new MarginDash({ apiKey: "md_test_key", baseUrl: ingest.url, ...FAST, ...overrides });
  clients.push(made);
  return made;
}

beforeEach(async () => {
  guard.raiseInternalErrors = true;
  ingest = await startIngest();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.shutdown(1)));
  await ingest.close();
  guard.raiseInternalErrors = false;
});

test("track sends the documented wire format", async () => {
  const md = client();
  const requestId = md.track({
    model: "gpt-4o-mini",
    promptTokens: 120,
    completionTokens: 80,
    customerId: "acct_123",
    feature: "summarize",
    cachedTokens: 20,
    reasoningTokens: 10,
    provider: "openai",
    metadata: { region: "eu" },
    timestamp: "2026-02-14T15:04:05Z",
  });
  assert.equal(await md.flush(5), true);
  assert.deepEqual(ingest.bodies("/v1/usage"), [
    {
      events: [
        {
          request_id: requestId,
          model_name: "gpt-4o-mini",
          timestamp: "2026-02-14T15:04:05Z",
          customer_id: "acct_123",
          prompt_tokens: 120,
          completion_tokens: 80,
          feature: "summarize",
          cached_tokens: 20,
          reasoning_tokens: 10,
          provider: "openai",
          metadata: { region: "eu" },
        },
      ],
    },
  ]);
  const [request] = ingest.state.requests;
  assert.equal(request.headers.authorization, "Bearer md_test_key");
  assert.match(request.headers["user-agent"], /^margindash-node\//);
  assert.match(requestId, /^[0-9a-f]{32}$/);
  assert.equal(md.stats.sent, 1);
});

test("events are batched by batch size", async () => {
  const md = client({ batchSize: 100, flushInterval: 5 });
  for (let i = 0; i < 250; i += 1) {
    md.track({ model: "m", promptTokens: i, completionTokens: 0, requestId: `r${i}` });
  }
  assert.equal(await md.flush(5), true);
  assert.deepEqual(
    ingest.bodies("/v1/usage").map((b) => b.events.length),
    [100, 100, 50],
  );
  assert.deepEqual(
    ingest.state.events.map((e) => e.prompt_tokens),
    Array.from({ length: 250 }, (_, i) => i),
  );
});

test("a partial batch is sent after the flush interval", async () => {
  const md = client({ flushInterval: 0.2 });
  md.track({ model: "m", promptTokens: 1, completionTokens: 1 });
  await sleep(50);
  assert.equal(ingest.state.requests.length, 0);
  await sleep(400);
  assert.equal(ingest.state.events.length, 1);
});

test("duplicates are counted once", async () => {
  const md = client();
  for (let i = 0; i < 3; i += 1) {
    md.track({ model: "m", promptTokens: 1, completionTokens: 1, requestId: "same" });
  }
  assert.equal(await md.flush(5), true);
  assert.equal(ingest.state.events.length, 1);
  assert.deepEqual([md.stats.sent, md.stats.duplicates], [1, 2]);
});

test("5xx and 429 are retried, honouring Retry-After", async () => {
  const answers = [{ status: 503 }, { status: 429, headers: { "Retry-After": "1" } }];
  const times = [];
  ingest.state.fault = () => {
    times.push(performance.now());
    return answers.shift();
  };
  const md = client();
  md.track({ model: "m", promptTokens: 1, completionTokens: 1 });
  assert.equal(await md.flush(10), true);
  assert.equal(ingest.state.events.length, 1);
  assert.equal(times.length, 3);
  assert.ok(times[2] - times[1] >= 950, "Retry-After: 1 was not honoured");
});

test("other 4xx are not retried, counted rejected and logged once", async (t) => {
  const warnings = t.mock.method(console, "warn", () => {});
  ingest.state.fault = () => ({
    status: 401,
    json: { error: { code: "unauthorized", message: "unknown API key" } },
  });
  const md = client({ batchSize: 1 });
  for (let i = 0; i < 3; i += 1) {
    md.track({ model: "m", promptTokens: 1, completionTokens: 1, requestId: `r${i}` });
  }
  assert.equal(await md.flush(5), true);
  assert.equal(ingest.state.requests.length, 3);
  assert.equal(md.stats.rejected, 3);
  assert.equal(warnings.mock.callCount(), 1);
  assert.match(warnings.mock.calls[0].arguments[0], /unknown API key/);
});

test("a batch is given up after maxRetries", async () => {
  ingest.state.fault = () => ({ status: 500 });
  const md = client({ maxRetries: 2 });
  md.track({ model: "m", promptTokens: 1, completionTokens: 1 });
  assert.equal(await md.flush(5), true);
  assert.equal(ingest.state.requests.length, 3);
  assert.deepEqual([md.stats.failed, md.stats.sent], [1, 0]);
});

test("server down then back: track stays fast and events arrive", async () => {
  const port = await freePort();
  const md = client({ baseUrl: `http://127.0.0.1:${port}/v1`, maxRetries: 50 });
  const started = performance.now();
  const ids = Array.from({ length: 200 }, () =>
    md.track({ model: "m", promptTokens: 1, completionTokens: 1 }),
  );
  assert.ok(performance.now() - started < 500);
  assert.equal(await md.flush(0.3), false);
  const revived = await startIngest({ port });
  try {
    assert.equal(await md.flush(10), true);
    assert.deepEqual(new Set(revived.state.events.map((e) => e.request_id)), new Set(ids));
  } finally {
    await revived.close();
  }
});

test("queue overflow is dropped and counted", async () => {
  ingest.state.fault = () => sleep(300).then(() => undefined);
  const md = client({ maxQueueSize: 10, batchSize: 1 });
  const results = Array.from({ length: 30 }, () =>
    md.track({ model: "m", promptTokens: 1, completionTokens: 1 }),
  );
  const dropped = results.filter((r) => r === undefined).length;
  assert.ok(dropped > 0);
  assert.equal(await md.flush(10), true);
  assert.equal(md.stats.dropped, dropped);
  assert.equal(md.stats.queued + md.stats.dropped, 30);
  assert.equal(ingest.state.events.length, md.stats.queued);
});

test("shutdown respects its deadline with a hanging server", async () => {
  ingest.state.fault = () => ({ status: 503, delayMs: 3000 });
  const md = client({ timeout: 10 });
  md.track({ model: "m", promptTokens: 1, completionTokens: 1 });
  await md.flush(0.1);
  const started = performance.now();
  await md.shutdown(0.5);
  assert.ok(performance.now() - started < 1000);
  assert.equal(md.track({ model: "m", promptTokens: 1, completionTokens: 1 }), undefined);
  assert.equal(md.enabled, false);
});

test("recordRevenue posts to /v1/revenue", async () => {
  const md = client();
  assert.equal(md.recordRevenue({ revenueId: "inv_1", customerId: "acme", amount: "233.25" }), "inv_1");
  md.recordRevenue({ revenueId: "inv_2", customerId: "acme", amountCents: -500, month: "2026-02" });
  assert.equal(await md.flush(5), true);
  assert.deepEqual(ingest.state.revenue, [
    { revenue_id: "inv_1", customer_id: "acme", currency: "usd", amount: "233.25" },
    { revenue_id: "inv_2", customer_id: "acme", currency: "usd", amount_cents: -500, month: "2026-02" },
  ]);
});

test("kill switch makes every call a no-op", async () => {
  const md = new MarginDash({
    baseUrl: ingest.url,
    env: { MARGINDASH_ENABLED: "false", MARGINDASH_API_KEY: "k" },
  });
  assert.equal(md.enabled, false);
  assert.equal(md.track({ model: "m", promptTokens: 1, completionTokens: 1 }), undefined);
  assert.equal(md.recordRevenue({ revenueId: "r", customerId: "c", amountCents: 1 }), undefined);
  assert.equal(await md.flush(1), true);
  assert.equal(await md.guardedCall({ customerId: "c" }, () => "called"), "called");
  assert.equal(ingest.state.requests.length, 0);
});

test("SDK bugs are swallowed and counted unless tests ask", (t) => {
  const md = client();
  const broken = { model: "m" };
  Object.defineProperty(broken, "promptTokens", {
    enumerable: true,
    get() {
      throw new Error("sdk bug");
    },
  });
  assert.throws(() => md.track(broken), /sdk bug/);
  guard.raiseInternalErrors = false;
  t.after(() => {
    guard.raiseInternalErrors = true;
  });
  assert.equal(md.track(broken), undefined);
  assert.equal(md.stats.errors, 2);
});

test("events are flushed when the process runs out of work", async () => {
  const entry = fileURLToPath(new URL("../dist/index.js", import.meta.url));
  const script = `
    const { MarginDash } = await import(${JSON.stringify(entry)});
    const md = new MarginDash();
    console.log(md.track({ model: "m", promptTokens: 3, completionTokens: 2, requestId: "exit_1" }));
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, MARGINDASH_API_KEY: "k", MARGINDASH_INGEST_URL: ingest.url },
  });
  let stdout = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  const [code] = await once(child, "close");
  assert.equal(code, 0);
  assert.equal(stdout.trim(), "exit_1");
  assert.deepEqual(
    ingest.state.events.map((e) => e.request_id),
    ["exit_1"],
  );
});
