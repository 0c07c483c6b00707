// Loopback stand-ins for margindash's ingest API, used by the tests.
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";

/** A margindash-like ingest API on 127.0.0.1 that records requests and dedupes ids. */
export async function startIngest({ port = 0 } = {}) {
  const state = {
    requests: [],
    events: [],
    revenue: [],
    seen: new Set(),
    fault: () => undefined,
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const request = { method: req.method, path: req.url, headers: req.headers, body: raw };
      state.requests.push(request);
      const injected = await state.fault(request);
      if (injected) return reply(res, injected);
      const body = JSON.parse(raw);
      const isRevenue = req.url === "/v1/revenue";
      const [items, idField, store] = isRevenue
        ? [body.revenue, "revenue_id", state.revenue]
        : [body.events, "request_id", state.events];
      const results = items.map((item) => {
        const duplicate = state.seen.has(item[idField]);
        state.seen.add(item[idField]);
        if (!duplicate) store.push(item);
        return { [idField]: item[idField], status: duplicate ? "duplicate" : "accepted" };
      });
      const accepted = results.filter((r) => r.status === "accepted").length;
      reply(res, {
        json: { accepted, duplicates: results.length - accepted, rejected: 0, results },
      });
    });
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  const actualPort = server.address().port;
  return {
    state,
    port: actualPort,
    url: `http://127.0.0.1:${actualPort}/v1`,
    bodies: (path) => state.requests.filter((r) => r.path === path).map((r) => JSON.parse(r.body)),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

/** Write a reply: { status, json, headers, delayMs }. */
export function reply(res, { status = 200, json, headers = {}, delayMs = 0 }) {
  setTimeout(() => {
    if (res.destroyed) return;
    res.writeHead(status, { "Content-Type": "application/json", ...headers });
    res.end(json === undefined ? "" : JSON.stringify(json));
  }, delayMs);
}

/** A loopback port nothing listens on. */
export async function freePort() {
  const probe = createNetServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Fast retry settings so failure paths run in milliseconds. */
export const FAST = {
  flushInterval: 0.05,
  backoffBase: 0.02,
  backoffMax: 0.2,
  maxRetries: 5,
  timeout: 2,
  shutdownTimeout: 1,
  env: {},
};

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
