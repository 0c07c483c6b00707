/** The budget blocklist (`GET /v1/budgets/blocklist`): TTL cache, If-None-Match, fail-open. */

import type { ResolvedOptions } from "./config.js";
import { headers, isRecord } from "./transport.js";

export type Rule = [type: string, value: string];

export interface CallScope {
  customerId?: string;
  feature?: string;
  model?: string;
}

/** Thrown by `guardedCall` instead of calling `fn` when a blocking budget covers the call. */
export class BudgetExceeded extends Error {
  readonly scopeType: string;
  readonly value: string;
  readonly customerId: string | undefined;
  readonly feature: string | undefined;

  constructor(rule: Rule, scope: CallScope) {
    super(`margindash budget exceeded for ${rule[0]} ${JSON.stringify(rule[1])}`);
    this.name = "BudgetExceeded";
    [this.scopeType, this.value] = rule;
    this.customerId = scope.customerId;
    this.feature = scope.feature;
  }
}

const key = (type: string, value: string): string => `${type}\u0000${value}`;

export class Blocklist {
  private rules = new Set<string>();
  private etag: string | undefined;
  private fetchedAt = -Infinity;
  private refreshing: Promise<void> | undefined;
  private warned = false;
  version: unknown = undefined;

  constructor(private readonly options: ResolvedOptions) {}

  /** The first rule that blocks this call, or undefined. */
  async blockingRule(scope: CallScope): Promise<Rule | undefined> {
    if (performance.now() - this.fetchedAt >= this.options.blocklistTtl * 1000) {
      this.refreshing ??= this.refresh().finally(() => {
        this.refreshing = undefined;
      });
      await this.refreshing;
    }
    if (this.rules.size === 0) return undefined;
    const candidates: Rule[] = [["org", "*"]];
    const { customerId, feature, model } = scope;
    if (customerId !== undefined) candidates.push(["customer", customerId]);
    if (feature !== undefined) candidates.push(["feature", feature]);
    if (customerId !== undefined && feature !== undefined) {
      candidates.push(["customer_feature", `${customerId}:${feature}`]);
    }
    if (model !== undefined) candidates.push(["model", model]);
    return candidates.find(([type, value]) => this.rules.has(key(type, value)));
  }

  private async refresh(): Promise<void> {
    const requestHeaders = headers(this.options);
    if (this.etag) requestHeaders["If-None-Match"] = this.etag;
    let response: Response;
    try {
      response = await fetch(`${this.options.baseUrl}/budgets/blocklist`, {
        headers: requestHeaders,
        signal: AbortSignal.timeout(Math.round(this.options.blocklistTimeout * 1000)),
      });
    } catch (error) {
      this.failOpen(`blocklist unreachable (${error instanceof Error ? error.name : "error"})`);
      return;
    }
    if (response.status === 304) {
      this.fetchedAt = performance.now();
      return;
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      this.failOpen(`blocklist answered HTTP ${response.status}`);
      return;
    }
    try {
      const body: unknown = await response.json();
      if (!isRecord(body) || !Array.isArray(body.blocked)) throw new TypeError("shape");
      this.rules = new Set(body.blocked.filter(isRecord).map(ruleKey));
      this.version = body.version;
      this.etag = response.headers.get("ETag") ?? undefined;
      this.fetchedAt = performance.now();
    } catch {
      this.failOpen("blocklist body was not the documented shape");
    }
  }

  /** An unreachable budget service must never stop the product from working. */
  private failOpen(reason: string): void {
    this.rules = new Set();
    this.etag = undefined;
    this.fetchedAt = performance.now();
    if (!this.warned) {
      this.warned = true;
      console.warn(`margindash: ${reason}; budget blocks are not enforced until it answers`);
    }
  }
}

function ruleKey(entry: Record<string, unknown>): string {
  const type = String(entry.type);
  if (type === "org") return key("org", "*");
  if (type === "customer_feature" && entry.customer_id !== undefined && entry.feature !== undefined) {
    return key(type, `${String(entry.customer_id)}:${String(entry.feature)}`);
  }
  return key(type, String(entry.value));
}
