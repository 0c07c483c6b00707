/** One HTTP attempt to deliver a batch, classified as settled or worth retrying. */

import type { ResolvedOptions } from "./config.js";

export const MAX_RETRY_AFTER = 60;
export const USER_AGENT = "margindash-node/0.1.0";

export type Kind = "usage" | "revenue";
export type Payload = Record<string, unknown>;

const ENDPOINTS: Record<Kind, [path: string, key: string]> = {
  usage: ["usage", "events"],
  revenue: ["revenue", "revenue"],
};

export interface SendResult {
  retry: boolean;
  retryAfter?: number;
  sent: number;
  duplicates: number;
  rejected: number;
  problem?: string;
  problemKey?: string;
}

/** Retrying these is safe because request_id / revenue_id make every delivery idempotent. */
export function isRetryable(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status < 600);
}

/** Capped exponential delay in seconds for retry `attempt` (1-based) with equal jitter. */
export function backoffDelay(attempt: number, base: number, cap: number): number {
  const ceiling = Math.min(cap, base * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Seconds from a Retry-After header (delta-seconds or HTTP date), capped at one minute. */
export function parseRetryAfter(raw: string | null | undefined): number | undefined {
  if (!raw) return undefined;
  let seconds = Number(raw);
  if (!Number.isFinite(seconds)) {
    const when = Date.parse(raw);
    if (Number.isNaN(when)) return undefined;
    seconds = (when - Date.now()) / 1000;
  }
  return Math.min(Math.max(seconds, 0), MAX_RETRY_AFTER);
}

export function headers(options: ResolvedOptions): Record<string, string> {
  const result: Record<string, string> = {
    "User-Agent": USER_AGENT,
    "Content-Type": "application/json",
  };
  if (options.apiKey) result.Authorization = `Bearer ${options.apiKey}`;
  return result;
}

/** Attempt one delivery of `payloads` of `kind`. */
export async function sendOnce(
  options: ResolvedOptions,
  kind: Kind,
  payloads: Payload[],
  timeoutSeconds: number,
): Promise<SendResult> {
  const [path, key] = ENDPOINTS[kind];
  let response: Response;
  try {
    response = await fetch(`${options.baseUrl}/${path}`, {
      method: "POST",
      headers: headers(options),
      body: JSON.stringify({ [key]: payloads }),
      signal: AbortSignal.timeout(Math.max(1, Math.round(timeoutSeconds * 1000))),
    });
  } catch (error) {
    const name = error instanceof Error ? error.name : "Error";
    return { retry: true, sent: 0, duplicates: 0, rejected: 0, problem: `network error: ${name}` };
  }
  if (isRetryable(response.status)) {
    await response.body?.cancel();
    return {
      retry: true,
      retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
      sent: 0,
      duplicates: 0,
      rejected: 0,
      problem: `HTTP ${response.status}`,
    };
  }
  let body: unknown = undefined;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  return settle(response, body, payloads.length);
}

function settle(response: Response, body: unknown, count: number): SendResult {
  const counters = isRecord(body) && Array.isArray(body.results) ? body : undefined;
  if (counters) {
    const rejected = Number(counters.rejected ?? 0);
    return {
      retry: false,
      sent: Number(counters.accepted ?? 0),
      duplicates: Number(counters.duplicates ?? 0),
      rejected,
      problem: rejected ? firstRejection(counters.results as unknown[]) : undefined,
      problemKey: rejected ? "rejected event" : undefined,
    };
  }
  if (response.ok) return { retry: false, sent: count, duplicates: 0, rejected: 0 };
  return {
    retry: false,
    sent: 0,
    duplicates: 0,
    rejected: count,
    problem: `HTTP ${response.status}: ${message(body)}`,
    problemKey: `HTTP ${response.status}`,
  };
}

function firstRejection(results: unknown[]): string | undefined {
  const bad = results.find((r) => isRecord(r) && r.status === "rejected") as
    | Record<string, unknown>
    | undefined;
  if (!bad) return undefined;
  return `event ${String(bad.request_id ?? bad.revenue_id)} rejected: ${message({ error: bad.error })}`;
}

function message(body: unknown): string {
  const error = isRecord(body) ? body.error : undefined;
  if (isRecord(error)) return String(error.message ?? error.code ?? JSON.stringify(error));
  return error ? String(error) : "no error message";
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
