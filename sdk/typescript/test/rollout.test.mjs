import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { MarginDash, rolloutBucket } from "../dist/index.js";

// The same vectors file the Python SDK's tests check: both SDKs must bucket identically.
const vectors = JSON.parse(
  readFileSync(new URL("../../testdata/rollout_vectors.json", import.meta.url), "utf8"),
).buckets;

test("buckets match the vectors shared with the Python SDK", () => {
  for (const [customer, bucket] of Object.entries(vectors)) {
    assert.equal(rolloutBucket(customer), bucket, customer);
  }
});

test("percent selects that share of customers by bucket", () => {
  const md = new MarginDash({ apiKey: "k", rolloutPercent: 5, env: {} });
  const customers = Array.from({ length: 4000 }, (_, i) => `cust_${i}`);
  const included = customers.filter((c) => md.inRollout(c));
  assert.ok(included.length >= 150 && included.length <= 250, String(included.length));
  assert.ok(included.every((c) => rolloutBucket(c) < 500));
  assert.equal(md.inRollout(undefined), false);
});

test("an allowlist alone means only those customers, from the environment too", () => {
  const md = new MarginDash({
    apiKey: "k",
    env: { MARGINDASH_ROLLOUT_CUSTOMERS: "acct_123, vip" },
  });
  assert.equal(md.inRollout("acct_123"), true);
  assert.equal(md.inRollout("vip"), true);
  assert.equal(md.inRollout("someone"), false);
  assert.equal(md.track({ model: "m", customerId: "someone" }), undefined);
});
