/** The public client: track, recordRevenue, flush, shutdown and guardedCall. */

import { randomUUID } from "node:crypto";

import { Blocklist, BudgetExceeded, type CallScope, type Rule } from "./blocklist.js";
import { type MarginDashOptions, type ResolvedOptions, resolveOptions } from "./config.js";
import { swallow } from "./guard.js";
import { inRollout } from "./rollout.js";
import {
  backoffDelay,
  type Kind,
  type Payload,
  type SendResult,
  sendOnce,
} from "./transport.js";

export interface TrackParams {
  model: string;
  promptTokens?: number;
  completionTokens?: number;
  customerId?: string;
  feature?: string;
  requestId?: string;
  cachedTokens?: number;
  cacheWriteTokens?: number;
  reasoningTokens?: number;
  revenueAmountCents?: number;
  timestamp?: Date | string;
  provider?: string;
  metadata?: Record<string, string>;
  promptChars?: number;
  completionChars?: number;
}

export interface RevenueParams {
  revenueId: string;
  customerId: string;
  /** Decimal string in major units, e.g. "233.25" (never a float). */
  amount?: string;
  amountCents?: number;
  currency?: string;
  /** "YYYY-MM" */
  month?: string;
  periodStart?: string;
  periodEnd?: string;
}

export interface Stats {
  queued: number;
  sent: number;
  duplicates: number;
  dropped: number;
  failed: number;
  rejected: number;
  pending: number;
  errors: number;
}

interface Item {
  kind: Kind;
  payload: Payload;
}

interface Waiter {
  target: number;
  done: (settled: boolean) => void;
}

const WIRE_NAMES: ReadonlyArray<[keyof TrackParams, string]> = [
  ["customerId", "customer_id"],
  ["promptTokens", "prompt_tokens"],
  ["completionTokens", "completion_tokens"],
  ["feature", "feature"],
  ["cachedTokens", "cached_tokens"],
  ["cacheWriteTokens", "cache_write_tokens"],
  ["reasoningTokens", "reasoning_tokens"],
  ["revenueAmountCents", "revenue_amount_cents"],
  ["provider", "provider"],
  ["metadata", "metadata"],
  ["promptChars", "prompt_chars"],
  ["completionChars", "completion_chars"],
];

/** Reports LLM usage and revenue to a margindash server without ever breaking the caller. */
export class MarginDash {
  readonly options: ResolvedOptions;
  private readonly active: boolean;
  private closed = false;
  private queue: Item[] = [];
  private readonly counters = {
    queued: 0,
    sent: 0,
    duplicates: 0,
    dropped: 0,
    failed: 0,
    rejected: 0,
    errors: 0,
  };
  private resolved = 0;
  private flushTarget = 0;
  private timer: NodeJS.Timeout | undefined;
  private pumping = false;
  private deadline: number | undefined;
  private wake: (() => void) | undefined;
  private waiters: Waiter[] = [];
  private readonly logged = new Set<string>();
  private readonly blocklist: Blocklist | undefined;

  constructor(options: MarginDashOptions = {}) {
    this.options = resolveOptions(options);
    if (this.options.enabled && !this.options.apiKey) {
      console.warn("margindash: no API key (MARGINDASH_API_KEY); reporting is disabled");
    }
    this.active = this.options.enabled && Boolean(this.options.apiKey);
    if (this.active) {
      this.blocklist = new Blocklist(this.options);
      registerForExit(this);
    }
  }

  /** Whether calls report anything (kill switch on, a key present, not shut down). */
  get enabled(): boolean {
    return this.active && !this.closed;
  }

  /** Cumulative counters of this client. */
  get stats(): Stats {
    return { ...this.counters, pending: this.counters.queued - this.resolved };
  }

  /** Whether this customer's calls are reported under the canary settings. */
  inRollout(customerId: string | undefined): boolean {
    return inRollout(customerId, this.options.rolloutPercent, this.options.rolloutCustomers);
  }

  /** Queue one usage event; returns its request_id, or undefined when it was not queued. */
  track(params: TrackParams): string | undefined {
    if (!this.active || this.closed) return undefined;
    try {
      if (this.options.rolloutPercent < 100 && !this.inRollout(params.customerId)) {
        return undefined;
      }
      const requestId = params.requestId ?? randomUUID().replaceAll("-", "");
      const event: Payload = {
        request_id: requestId,
        model_name: params.model,
        timestamp: rfc3339(params.timestamp),
      };
      for (const [name, wire] of WIRE_NAMES) {
        if (params[name] !== undefined) event[wire] = params[name];
      }
      return this.enqueue("usage", event) ? requestId : undefined;
    } catch (error) {
      this.internalError(error, "track");
      return undefined;
    }
  }

  /** Queue revenue for a customer (`POST /v1/revenue`); returns revenueId when queued. */
  recordRevenue(params: RevenueParams): string | undefined {
    if (!this.active || this.closed) return undefined;
    try {
      if (this.options.rolloutPercent < 100 && !this.inRollout(params.customerId)) {
        return undefined;
      }
      const entry: Payload = {
        revenue_id: params.revenueId,
        customer_id: params.customerId,
        currency: params.currency ?? "usd",
      };
      if (params.amount !== undefined) entry.amount = String(params.amount);
      if (params.amountCents !== undefined) entry.amount_cents = params.amountCents;
      if (params.month !== undefined) entry.month = params.month;
      if (params.periodStart !== undefined) entry.period_start = params.periodStart;
      if (params.periodEnd !== undefined) entry.period_end = params.periodEnd;
      return this.enqueue("revenue", entry) ? params.revenueId : undefined;
    } catch (error) {
      this.internalError(error, "recordRevenue");
      return undefined;
    }
  }

  /** Send everything queued so far; true when all of it was settled within the timeout. */
  async flush(timeoutSeconds = 10): Promise<boolean> {
    if (!this.active) return true;
    try {
      const target = this.counters.queued;
      if (this.resolved >= target) return true;
      this.flushTarget = Math.max(this.flushTarget, target);
      const settled = this.waitFor(target, timeoutSeconds);
      this.startPump();
      return await settled;
    } catch (error) {
      this.internalError(error, "flush");
      return false;
    }
  }

  /** Flush within the timeout (default shutdownTimeout) and stop; later calls are no-ops. */
  async shutdown(timeoutSeconds?: number): Promise<boolean> {
    if (!this.active) return true;
    try {
      const timeout = timeoutSeconds ?? this.options.shutdownTimeout;
      if (!this.closed) {
        this.closed = true;
        this.deadline = performance.now() + timeout * 1000;
        this.wake?.();
        this.startPump();
      }
      return await this.waitFor(this.counters.queued, timeout);
    } catch (error) {
      this.internalError(error, "shutdown");
      return false;
    }
  }

  /** Await `fn()` unless a blocking budget covers the call: then throw BudgetExceeded. */
  async guardedCall<T>(scope: CallScope, fn: () => T | Promise<T>): Promise<T> {
    const rule = await this.blockingRule(scope);
    if (rule !== undefined) throw new BudgetExceeded(rule, scope);
    // Outside the guard on purpose: the app's own errors must reach it unchanged.
    return await fn();
  }

  /** Whether anything queued is still unsettled (used by the exit hook). */
  hasPending(): boolean {
    return !this.closed && this.resolved < this.counters.queued;
  }

  private async blockingRule(scope: CallScope): Promise<Rule | undefined> {
    if (this.blocklist === undefined || !this.enabled) return undefined;
    try {
      if (this.options.rolloutPercent < 100 && !this.inRollout(scope.customerId)) {
        return undefined;
      }
      return await this.blocklist.blockingRule(scope);
    } catch (error) {
      this.internalError(error, "guardedCall");
      return undefined;
    }
  }

  private enqueue(kind: Kind, payload: Payload): boolean {
    if (this.queue.length >= this.options.maxQueueSize) {
      this.counters.dropped += 1;
      return false;
    }
    this.queue.push({ kind, payload });
    this.counters.queued += 1;
    this.schedule();
    return true;
  }

  private schedule(): void {
    if (this.pumping) return;
    if (this.queue.length >= this.options.batchSize || this.flushTarget > this.resolved) {
      this.startPump();
    } else if (this.timer === undefined) {
      // Unref'd so a quiet batch never keeps the process alive; the exit hook flushes it.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.startPump();
      }, this.options.flushInterval * 1000);
      this.timer.unref();
    }
  }

  private startPump(): void {
    if (this.pumping || this.queue.length === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pumping = true;
    this.pump()
      .catch((error: unknown) => {
        // The pump must outlive its own bugs, or every later event would pile up unsent.
        this.counters.errors += 1;
        try {
          swallow(error, "worker");
        } catch (raised) {
          queueMicrotask(() => {
            throw raised;
          });
        }
      })
      .finally(() => {
        this.pumping = false;
        if (this.queue.length > 0) this.schedule();
      });
  }

  private async pump(): Promise<void> {
    do {
      await this.deliver(this.queue.splice(0, this.options.batchSize));
    } while (
      this.queue.length > 0 &&
      (this.queue.length >= this.options.batchSize ||
        this.flushTarget > this.resolved ||
        this.closed)
    );
  }

  private async deliver(batch: Item[]): Promise<void> {
    for (const kind of ["usage", "revenue"] as const) {
      const payloads = batch.filter((item) => item.kind === kind).map((item) => item.payload);
      if (payloads.length > 0) this.settle(await this.sendWithRetries(kind, payloads), payloads.length);
    }
  }

  private async sendWithRetries(kind: Kind, payloads: Payload[]): Promise<SendResult> {
    for (let attempt = 1; ; attempt += 1) {
      const timeout = this.requestTimeout();
      if (timeout <= 0) {
        return { retry: true, sent: 0, duplicates: 0, rejected: 0, problem: "deadline passed" };
      }
      const result = await sendOnce(this.options, kind, payloads, timeout);
      if (!result.retry) return result;
      const delay =
        result.retryAfter ??
        backoffDelay(attempt, this.options.backoffBase, this.options.backoffMax);
      if (attempt > this.options.maxRetries || !this.mayWait(delay)) return result;
      await this.sleep(delay);
    }
  }

  private requestTimeout(): number {
    if (this.deadline === undefined) return this.options.timeout;
    return Math.min(this.options.timeout, (this.deadline - performance.now()) / 1000);
  }

  private mayWait(delaySeconds: number): boolean {
    return this.deadline === undefined || performance.now() + delaySeconds * 1000 < this.deadline;
  }

  private sleep(seconds: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, seconds * 1000);
      timer.unref();
      // Shutdown calls wake so a long backoff cannot hold the process past its deadline.
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private settle(result: SendResult, count: number): void {
    if (result.retry) {
      this.counters.failed += count;
      this.logOnce(`gave up: ${result.problem}`, result.problem);
    } else {
      this.counters.sent += result.sent;
      this.counters.duplicates += result.duplicates;
      this.counters.rejected += result.rejected;
      if (result.problem) this.logOnce(result.problemKey ?? result.problem, result.problem);
    }
    this.resolved += count;
    const ready = this.waiters.filter((waiter) => this.resolved >= waiter.target);
    for (const waiter of ready) waiter.done(true);
  }

  private waitFor(target: number, timeoutSeconds: number): Promise<boolean> {
    if (this.resolved >= target) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        target,
        done: (settled) => {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((other) => other !== waiter);
          resolve(settled);
        },
      };
      const timer = setTimeout(() => waiter.done(false), Math.max(timeoutSeconds, 0) * 1000);
      this.waiters.push(waiter);
    });
  }

  private logOnce(key: string, message: string | undefined): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    console.warn(`margindash: ${message} (further occurrences are not logged)`);
  }

  private internalError(error: unknown, where: string): void {
    this.counters.errors += 1;
    swallow(error, where);
  }
}

function rfc3339(value: Date | string | undefined): string {
  if (typeof value === "string") return value;
  return (value ?? new Date()).toISOString();
}

const live = new Set<WeakRef<MarginDash>>();
let exitHooked = false;

/** Flush clients with unsent events when the event loop empties (not on process.exit()). */
function registerForExit(client: MarginDash): void {
  live.add(new WeakRef(client));
  if (exitHooked) return;
  exitHooked = true;
  process.on("beforeExit", () => {
    for (const ref of live) {
      const found = ref.deref();
      if (found === undefined) live.delete(ref);
      else if (found.hasPending()) void found.shutdown();
    }
  });
}
