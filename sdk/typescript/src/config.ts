/** Every client option, declared once with its environment variable and default. */

export interface MarginDashOptions {
  /** Ingest key sent as a Bearer token (env MARGINDASH_API_KEY). */
  apiKey?: string;
  /** The server's `/v1` base URL (env MARGINDASH_INGEST_URL). */
  baseUrl?: string;
  /** Kill switch: false turns every call into a no-op (env MARGINDASH_ENABLED). */
  enabled?: boolean;
  /** Canary share of customers, 0-100 (env MARGINDASH_ROLLOUT_PERCENT). */
  rolloutPercent?: number;
  /** Canary allowlist of customer ids (env MARGINDASH_ROLLOUT_CUSTOMERS, comma-separated). */
  rolloutCustomers?: Iterable<string>;
  /** Events held in memory; more are dropped and counted (env MARGINDASH_MAX_QUEUE_SIZE). */
  maxQueueSize?: number;
  /** Events per request, at most 1000 (env MARGINDASH_BATCH_SIZE). */
  batchSize?: number;
  /** Seconds an event may wait for its batch to fill (env MARGINDASH_FLUSH_INTERVAL). */
  flushInterval?: number;
  /** Retries of one batch before it counts as failed (env MARGINDASH_MAX_RETRIES). */
  maxRetries?: number;
  /** First retry delay in seconds (env MARGINDASH_BACKOFF_BASE). */
  backoffBase?: number;
  /** Longest retry delay in seconds (env MARGINDASH_BACKOFF_MAX). */
  backoffMax?: number;
  /** HTTP timeout per request in seconds (env MARGINDASH_TIMEOUT). */
  timeout?: number;
  /** Seconds the exit flush may take (env MARGINDASH_SHUTDOWN_TIMEOUT). */
  shutdownTimeout?: number;
  /** Seconds the budget blocklist is cached (env MARGINDASH_BLOCKLIST_TTL). */
  blocklistTtl?: number;
  /** HTTP timeout of the blocklist fetch in seconds (env MARGINDASH_BLOCKLIST_TIMEOUT). */
  blocklistTimeout?: number;
  /** Environment to read instead of process.env (tests). */
  env?: Record<string, string | undefined>;
}

export interface ResolvedOptions {
  apiKey: string | undefined;
  baseUrl: string;
  enabled: boolean;
  rolloutPercent: number;
  rolloutCustomers: ReadonlySet<string>;
  maxQueueSize: number;
  batchSize: number;
  flushInterval: number;
  maxRetries: number;
  backoffBase: number;
  backoffMax: number;
  timeout: number;
  shutdownTimeout: number;
  blocklistTtl: number;
  blocklistTimeout: number;
}

const DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1";

const NUMBERS = {
  maxQueueSize: ["MARGINDASH_MAX_QUEUE_SIZE", 10_000],
  batchSize: ["MARGINDASH_BATCH_SIZE", 100],
  flushInterval: ["MARGINDASH_FLUSH_INTERVAL", 5],
  maxRetries: ["MARGINDASH_MAX_RETRIES", 8],
  backoffBase: ["MARGINDASH_BACKOFF_BASE", 0.5],
  backoffMax: ["MARGINDASH_BACKOFF_MAX", 30],
  timeout: ["MARGINDASH_TIMEOUT", 10],
  shutdownTimeout: ["MARGINDASH_SHUTDOWN_TIMEOUT", 2],
  blocklistTtl: ["MARGINDASH_BLOCKLIST_TTL", 30],
  blocklistTimeout: ["MARGINDASH_BLOCKLIST_TIMEOUT", 2],
} as const;

type NumberOption = keyof typeof NUMBERS;

function envNumber(env: Record<string, string | undefined>, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  const value = Number(raw);
  if (Number.isFinite(value)) return value;
  console.warn(`margindash: ignoring invalid ${name}=${JSON.stringify(raw)}`);
  return undefined;
}

function envBool(raw: string | undefined): boolean | undefined {
  if (raw === undefined) return undefined;
  return !["0", "false", "no", "off", ""].includes(raw.trim().toLowerCase());
}

function envList(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  return raw
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
}

/** Explicit options win over the environment, which wins over defaults. */
export function resolveOptions(options: MarginDashOptions = {}): ResolvedOptions {
  const env = options.env ?? process.env;
  const numbers = {} as Record<NumberOption, number>;
  for (const key of Object.keys(NUMBERS) as NumberOption[]) {
    const [name, fallback] = NUMBERS[key];
    numbers[key] = options[key] ?? envNumber(env, name) ?? fallback;
  }
  const rolloutCustomers = new Set(
    options.rolloutCustomers ?? envList(env.MARGINDASH_ROLLOUT_CUSTOMERS) ?? [],
  );
  const percent = options.rolloutPercent ?? envNumber(env, "MARGINDASH_ROLLOUT_PERCENT");
  return {
    ...numbers,
    apiKey: options.apiKey ?? env.MARGINDASH_API_KEY,
    baseUrl: (options.baseUrl ?? env.MARGINDASH_INGEST_URL ?? DEFAULT_BASE_URL).replace(/\/+$/, ""),
    enabled: options.enabled ?? envBool(env.MARGINDASH_ENABLED) ?? true,
    rolloutCustomers,
    rolloutPercent: Math.min(Math.max(percent ?? (rolloutCustomers.size ? 0 : 100), 0), 100),
    batchSize: Math.min(Math.max(Math.trunc(numbers.batchSize), 1), 1000),
  };
}
