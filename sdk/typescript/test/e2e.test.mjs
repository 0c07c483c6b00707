// End to end: the SDK against the real margindash server (`margindash init` + `margindash serve`
// on loopback, over a fresh SQLite file). The server comes from MARGINDASH_BIN, else this
// checkout's .venv, else PATH; without one these tests are skipped, except with CI=true.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { guard } from "../dist/guard.js";
import { BudgetExceeded, MarginDash } from "../dist/index.js";
import { FAST, freePort, sleep } from "./helpers.mjs";

const run = promisify(execFile);

function findMargindash() {
  if (process.env.MARGINDASH_BIN) return process.env.MARGINDASH_BIN;
  const checkout = fileURLToPath(new URL("../../../.venv/bin/margindash", import.meta.url));
  if (existsSync(checkout)) return checkout;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, "margindash"))) return join(dir, "margindash");
  }
  return undefined;
}

const BIN = findMargindash();
const MISSING =
  "the margindash server is not installed: set MARGINDASH_BIN or put `margindash` on PATH " +
  "(pip install -e . at the repository root)";

if (BIN === undefined && process.env.CI === "true") {
  test("the margindash server is installed (required in CI)", () => assert.fail(MISSING));
}

/** `margindash init` + `serve` in a temporary directory; stopped by `stop()`. */
async function startServer() {
  const workdir = mkdtempSync(join(tmpdir(), "margindash-ts-e2e-"));
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("MARGINDASH_")),
  );
  env.MARGINDASH_DATABASE_URL = `sqlite:///${join(workdir, "md.db")}`;
  const init = await run(BIN, ["init", "--org", "acme", "--json"], {
    cwd: workdir,
    env,
    timeout: 120_000,
  });
  const keys = JSON.parse(init.stdout);
  const port = await freePort();
  const logPath = join(workdir, "serve.log");
  const log = openSync(logPath, "a");
  const args = ["serve", "--host", "127.0.0.1", "--port", String(port), "--no-worker"];
  const child = spawn(BIN, args, { cwd: workdir, env, stdio: ["ignore", log, log] });
  closeSync(log);
  const server = {
    child,
    url: `http://127.0.0.1:${port}/v1`,
    adminKey: keys.api_key,
    ingestKey: keys.ingest_key,
    log: () => readFileSync(logPath, "utf8"),
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGCONT");
        child.kill("SIGTERM");
        await once(child, "exit");
      }
      rmSync(workdir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) return server;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  const output = server.log();
  await server.stop();
  throw new Error(`margindash serve did not become healthy:\n${output.slice(-3000)}`);
}

describe("against the real margindash server", { skip: BIN === undefined && MISSING }, () => {
  let server;
  const clients = [];

  before(async () => {
    guard.raiseInternalErrors = true;
    server = await startServer();
  });

  after(async () => {
    await Promise.all(clients.splice(0).map((client) => client.shutdown(1)));
    await server?.stop();
    guard.raiseInternalErrors = false;
  });

  const newClient = (overrides = {}) => {
    const client = new MarginDash({
      apiKey: server.ingestKey,
      baseUrl: server.url,
      ...FAST,
      ...overrides,
    });
    clients.push(client);
    return client;
  };

  const call = async (method, path, { key = server.adminKey, body, params } = {}) => {
    const query = params ? `?${new URLSearchParams(params)}` : "";
    const response = await fetch(`${server.url}${path}${query}`, {
      method,
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };

  /** P&L rows by customer for ids starting with `prefix`, over today ± 1 day. */
  const pnlRows = async (prefix) => {
    const day = (offset) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    const params = { from: day(-1), to: day(1), group_by: "customer" };
    const { status, body } = await call("GET", "/pnl", { params });
    assert.equal(status, 200, JSON.stringify(body));
    return Object.fromEntries(
      body.rows.filter((row) => row.key.startsWith(prefix)).map((row) => [row.key, row]),
    );
  };

  const unique = (name) => `${name}-${randomUUID().slice(0, 8)}`;

  test("tracked events and revenue are stored, priced and in the P&L", async () => {
    const prefix = unique("ts-e2e");
    const md = newClient();
    const first = {
      model: "gpt-4o-mini",
      promptTokens: 120,
      completionTokens: 80,
      cachedTokens: 20,
      customerId: `${prefix}-a`,
      feature: "summarize",
    };
    const small = { model: "gpt-4o-mini" };
    const ids = [
      md.track(first),
      md.track({ ...small, promptTokens: 30, completionTokens: 10, customerId: `${prefix}-a` }),
      md.track({ ...small, promptTokens: 5, completionTokens: 5, customerId: `${prefix}-b` }),
    ];
    const today = new Date().toISOString().slice(0, 10);
    md.recordRevenue({
      revenueId: `${prefix}-inv`,
      customerId: `${prefix}-a`,
      amount: "10.00",
      periodStart: today,
      periodEnd: today,
    });
    assert.equal(await md.flush(10), true);
    assert.equal(md.stats.sent, 4);
    assert.equal(md.stats.rejected, 0);

    const stored = await call("GET", `/usage/${ids[0]}`);
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    const event = stored.body;
    const fields = ["customer_id", "feature", "model_name", "prompt_tokens", "completion_tokens"];
    assert.deepEqual(
      [...fields, "cached_tokens"].map((name) => event[name]),
      [`${prefix}-a`, "summarize", "gpt-4o-mini", 120, 80, 20],
    );
    assert.equal(event.priced, true);
    const dryRun = await call("POST", "/usage/dry-run", {
      key: server.ingestKey,
      body: {
        request_id: `${prefix}-dry`,
        customer_id: `${prefix}-a`,
        model_name: "gpt-4o-mini",
        prompt_tokens: 120,
        completion_tokens: 80,
        cached_tokens: 20,
      },
    });
    assert.equal(event.cost_usd, dryRun.body.results[0].cost_usd);

    const rows = await pnlRows(prefix);
    assert.deepEqual(
      [rows[`${prefix}-a`].events, rows[`${prefix}-a`].prompt_tokens, rows[`${prefix}-a`].revenue],
      [2, 150, "10.00"],
    );
    assert.equal(rows[`${prefix}-b`].events, 1);
  });

  test("a re-sent requestId is counted once", async () => {
    const customerId = unique("ts-dup");
    const md = newClient();
    const event = { model: "gpt-4o-mini", promptTokens: 7, completionTokens: 3, customerId };
    for (let i = 0; i < 2; i += 1) {
      md.track({ ...event, requestId: `${customerId}-req` });
      assert.equal(await md.flush(10), true);
    }
    assert.deepEqual([md.stats.sent, md.stats.duplicates], [1, 1]);
    assert.equal((await pnlRows(customerId))[customerId].events, 1);
  });

  test("an event the server rejects is counted as rejected, not retried", async () => {
    const md = newClient();
    const customerId = unique("ts-bad");
    md.track({ model: "gpt-4o-mini", promptTokens: -1, completionTokens: 3, customerId });
    assert.equal(await md.flush(10), true);
    assert.deepEqual([md.stats.sent, md.stats.rejected, md.stats.failed], [0, 1, 0]);
  });

  test("events tracked while the server is frozen arrive once, after it resumes", async () => {
    const customerId = unique("ts-slow");
    const md = newClient({ timeout: 0.5, maxRetries: 100 });
    server.child.kill("SIGSTOP");
    try {
      for (let i = 0; i < 20; i += 1) {
        md.track({ model: "gpt-4o-mini", promptTokens: 1, completionTokens: 1, customerId });
      }
      assert.equal(await md.flush(1), false);
    } finally {
      server.child.kill("SIGCONT");
    }
    assert.equal(await md.flush(30), true);
    assert.equal(md.stats.sent + md.stats.duplicates, 20);
    assert.equal((await pnlRows(customerId))[customerId].events, 20);
  });

  test("guardedCall refuses a customer with a spent block budget until it goes", async () => {
    const customerId = unique("ts-blocked");
    const md = newClient({ blocklistTtl: 0 });
    assert.equal(await md.guardedCall({ customerId }, () => "called"), "called");

    const created = await call("POST", "/budgets", {
      body: {
        name: `ts e2e ${customerId}`,
        scope: { type: "customer", value: customerId },
        period: "month",
        limit_usd: "0.00001",
        thresholds: [100],
        action: "block",
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    md.track({ model: "gpt-4o-mini", promptTokens: 1000, completionTokens: 1000, customerId });
    assert.equal(await md.flush(10), true);

    let refused;
    for (let attempt = 0; attempt < 100 && refused === undefined; attempt += 1) {
      await md.guardedCall({ customerId, feature: "chat" }, () => "called").catch((error) => {
        refused = error;
      });
      if (refused === undefined) await sleep(100);
    }
    assert.ok(refused instanceof BudgetExceeded, `not refused: ${refused}`);
    assert.deepEqual([refused.scopeType, refused.value], ["customer", customerId]);
    assert.equal(await md.guardedCall({ customerId: unique("ts-other") }, () => "other"), "other");

    const deleted = await call("DELETE", `/budgets/${created.body.id}`);
    assert.equal(deleted.status, 200);
    assert.equal(await md.guardedCall({ customerId }, () => "called"), "called");
  });
});
