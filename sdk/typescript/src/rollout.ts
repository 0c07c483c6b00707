/** Canary rollout: a stable bucket per customer id, identical to the Python SDK's. */

import { createHash } from "node:crypto";

export const BUCKETS = 10_000;

/** Bucket 0-9999 from the first 4 bytes of sha256(customer_id), read big-endian. */
export function rolloutBucket(customerId: string): number {
  const digest = createHash("sha256").update(customerId, "utf8").digest();
  return digest.readUInt32BE(0) % BUCKETS;
}

/** Whether events for this customer are sent under the canary settings. */
export function inRollout(
  customerId: string | undefined,
  percent: number,
  allowlist: ReadonlySet<string>,
): boolean {
  if (percent >= 100) return true;
  if (customerId === undefined) return false;
  if (allowlist.has(customerId)) return true;
  return rolloutBucket(customerId) < percent * (BUCKETS / 100);
}
