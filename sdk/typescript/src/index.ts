/** margindash SDK: report per-call LLM usage and revenue to a self-hosted margindash server. */

export { BudgetExceeded, type CallScope } from "./blocklist.js";
export {
  MarginDash,
  type RevenueParams,
  type Stats,
  type TrackParams,
} from "./client.js";
export type { MarginDashOptions } from "./config.js";
export { rolloutBucket } from "./rollout.js";
