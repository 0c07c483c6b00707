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

/**
 * How long the server's answer to "what model is this name?" is kept, seconds: names change
 * meaning only when the org adds an alias or the price catalogue learns a model.
 */
const RESOLVED_TTL = 300;
const MAX_RESOLVED = 1000;

export class Blocklist {
  private rules = new Set<string>();
  private modelRules = false;
  /** model name -> [booked name, until (performance.now() ms)] */
  private booked = new Map<string, [string, number]>();
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
    if (model !== undefined && this.modelRules) {
      candidates.push(["model", await this.bookedModel(model)]);
    }
    return candidates.find(([type, value]) => this.rules.has(key(type, value)));
  }

  /**
   * The name the server books `model` under, as model budgets name it. `gpt-4o-mini-2024-07-18`
   * and `openai/gpt-4o-mini` are `gpt-4o-mini` there, through the price catalogue and the org's
   * aliases, which the SDK does not have: a name that is not already a blocked model (trimmed,
   * in lower case) is asked of `GET /v1/budgets/check` once and remembered. Without an answer
   * the name is only trimmed and lower-cased.
   */
  private async bookedModel(model: string): Promise<string> {
    const local = model.trim().toLowerCase();
    if (this.rules.has(key("model", local))) return local;
    const known = this.booked.get(model);
    if (known !== undefined && performance.now() < known[1]) return known[0];
    const booked = await this.askBookedModel(model);
    if (this.booked.size >= MAX_RESOLVED) this.booked.clear();
    // A failed question is asked again only when the blocklist would be fetched again.
    const ttl = booked !== undefined ? RESOLVED_TTL : this.options.blocklistTtl;
    this.booked.set(model, [booked ?? local, performance.now() + ttl * 1000]);
    return booked ?? local;
  }

  private async askBookedModel(model: string): Promise<string | undefined> {
    try {
      const response = await fetch(
        `${this.options.baseUrl}/budgets/check?model=${encodeURIComponent(model)}`,
        {
          headers: headers(this.options),
          signal: AbortSignal.timeout(Math.round(this.options.blocklistTimeout * 1000)),
        },
      );
      if (response.status !== 200) {
        await response.body?.cancel();
        return undefined;
      }
      const body: unknown = await response.json();
      // An older server does not say.
      return isRecord(body) && typeof body.model === "string" ? body.model : undefined;
    } catch {
      return undefined;
    }
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
      const entries = body.blocked.filter(isRecord);
      this.rules = new Set(entries.map(ruleKey));
      this.modelRules = entries.some((entry) => entry.type === "model");
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
    this.modelRules = false;
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
