"""Every table, as SQLAlchemy Core. Alembic migrations in `migrations/` create them.

Money columns are integers: costs and revenue in nano-units (1e-9) of USD, source revenue in the
currency's minor units. Every row carries `org_id`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from margindash.db.types import BigId, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

orgs = Table(
    "orgs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("currency", String(3), nullable=False, default="usd"),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("org_id", String(32), ForeignKey("orgs.id"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(32), nullable=False),
    Column("request_id", String(255), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("feature", String(255), nullable=False),
    Column("model_name", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    Column("provider", String(64)),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("day", Date, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger),
    Column("price_source", String(64)),
    Column("price_ref", String(255)),
    Column("estimated", Boolean, nullable=False),
    Column("revenue_cents", BigInteger),
    Column("metadata", Text),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_id", "request_id"),
    Index(None, "org_id", "occurred_at"),
    # Only unpriced events are looked up by model (to re-price them once a price exists), so
    # only they are indexed: priced events, nearly all of them, skip this index on insert.
    Index(
        "ix_usage_events_unpriced",
        "org_id",
        "model_name",
        sqlite_where=text("cost_nanos IS NULL"),
        postgresql_where=text("cost_nanos IS NULL"),
    ),
)


def _rollup_measures() -> list[Column[int]]:
    return [
        Column("events", BigInteger, nullable=False, default=0),
        Column("prompt_tokens", BigInteger, nullable=False, default=0),
        Column("completion_tokens", BigInteger, nullable=False, default=0),
        Column("cached_tokens", BigInteger, nullable=False, default=0),
        Column("cache_write_tokens", BigInteger, nullable=False, default=0),
        Column("reasoning_tokens", BigInteger, nullable=False, default=0),
        Column("cost_nanos", BigInteger, nullable=False, default=0),
        Column("unpriced_events", BigInteger, nullable=False, default=0),
        Column("estimated_events", BigInteger, nullable=False, default=0),
        Column("revenue_nanos", BigInteger, nullable=False, default=0),
        Column("max_prompt_tokens", BigInteger, nullable=False, default=0),
    ]


ROLLUP_MEASURES = tuple(c.name for c in _rollup_measures())

# Every ingested event rewrites a row in each rollup table. PostgreSQL can rewrite a row in
# place of its page (a HOT update: no index writes, dead versions pruned without VACUUM) only
# while the page has room for the new version, so rollup pages are filled to 70% on insert.
ROLLUP_STORAGE: dict[str, Any] = {"postgresql_with": {"fillfactor": 70}}

# Aggregates kept in the same transaction as the events, so reports read O(customers x days).
# Revenue that is not attached to a usage event is booked with feature = model = "".
daily_rollups = Table(
    "daily_rollups",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("day", Date, nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("feature", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    *_rollup_measures(),
    PrimaryKeyConstraint("org_id", "day", "customer_id", "feature", "model"),
    **ROLLUP_STORAGE,
)

monthly_rollups = Table(
    "monthly_rollups",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("month", Date, nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("feature", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    *_rollup_measures(),
    PrimaryKeyConstraint("org_id", "month", "customer_id", "feature", "model"),
    **ROLLUP_STORAGE,
)

revenue_entries = Table(
    "revenue_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(32), nullable=False),
    Column("revenue_id", String(255), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fx_rate", String(40), nullable=False),
    Column("amount_nanos", BigInteger, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("source", String(16), nullable=False),
    Column("description", String(255)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_id", "revenue_id"),
    Index(None, "org_id", "customer_id"),
)

fx_rates = Table(
    "fx_rates",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    # Units of the org's reporting currency per one unit of `currency`, as a decimal string.
    Column("rate", String(40), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("org_id", "currency"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(32), nullable=False),
    Column("alias", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    Column("provider", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    # An alias may point elsewhere from a later date (a redeployed Azure deployment).
    Column("effective_from", Date, nullable=False),
    UniqueConstraint("org_id", "alias", "effective_from"),
)

# Prices per 1M tokens in nano-USD (integers); a discount in basis points (1000 = 10%).
price_overrides = Table(
    "price_overrides",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(32), nullable=False),
    Column("model", String(255)),
    Column("provider", String(64)),
    Column("input_per_mtok_nanos", BigInteger),
    Column("output_per_mtok_nanos", BigInteger),
    Column("cached_input_per_mtok_nanos", BigInteger),
    Column("cache_write_per_mtok_nanos", BigInteger),
    Column("discount_bp", Integer),
    Column("effective_from", Date, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("effective_to", Date),  # inclusive; NULL: open-ended
    # Deleted overrides are kept: priced events name them in `price_ref` ("override:12").
    Column("deleted_at", UTCDateTime),
    Index(None, "org_id"),
)

# Retries that were recognised as duplicates, per org and UTC day (for `margindash doctor`).
ingest_stats = Table(
    "ingest_stats",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("day", Date, nullable=False),
    Column("duplicates", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("org_id", "day"),
)

# One row per periodic job: which process holds it until when (see margindash.jobs.scheduler).
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("last_started_at", UTCDateTime),
)

# Dashboard accounts: one org each, e-mail unique across the deployment, argon2 password hashes.
users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("org_id", String(32), ForeignKey("orgs.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
)

# Dashboard sessions: the cookie carries a random token, the table only its SHA-256.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "user_id"),
)

# Failed logins per throttle key (e-mail, client address), read over a sliding window.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("throttle_key", String(400), nullable=False),
    Column("failed_at", UTCDateTime, nullable=False),
    Index(None, "throttle_key", "failed_at"),
)

# Spending limits: a scope, a period in the org's time zone, a limit in nano-USD and the
# percentages that alert (JSON array of decimal strings). `revision` goes up when what a
# percentage means changes (scope, period, limit), which re-arms thresholds already fired.
# `blocked_until` is set while a `block` budget is exhausted: the end of that period.
budgets = Table(
    "budgets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("org_id", String(32), ForeignKey("orgs.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("scope_type", String(16), nullable=False),
    Column("customer_id", String(255)),
    Column("feature", String(255)),
    Column("model", String(255)),
    Column("period", String(8), nullable=False),
    Column("limit_nanos", BigInteger, nullable=False),
    Column("thresholds", String(255), nullable=False),
    Column("action", String(8), nullable=False),
    Column("emails", Text, nullable=False),
    Column("webhook_url", String(2048)),
    Column("revision", Integer, nullable=False),
    Column("blocked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_id", "name"),
)

# Every alert fired (budget thresholds, monitors). The unique (org, dedupe_key) is what makes
# each (budget, period, threshold) fire exactly once across processes. No foreign key to
# budgets: the history outlives a deleted budget.
alerts = Table(
    "alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(32), nullable=False),
    Column("dedupe_key", String(400), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("budget_id", String(32)),
    Column("subject", String(500), nullable=False),
    Column("body", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_id", "dedupe_key"),
    Index(None, "org_id", "created_at"),
)

# One row per channel of an alert (e-mail to its recipients, one webhook), with its retries.
# `next_attempt_at` is when a sender may (re)try it: NULL once delivered or given up.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("target", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("next_attempt_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Index(None, "alert_id"),
    Index(None, "next_attempt_at"),
)

# An org's settings for one monitor (absent: the defaults in margindash.budgets.monitors).
monitor_settings = Table(
    "monitor_settings",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("threshold", String(40), nullable=False),
    Column("min_volume_nanos", BigInteger, nullable=False),
    Column("lookback", Integer, nullable=False),
    Column("emails", Text, nullable=False),
    Column("webhook_url", String(2048)),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("org_id", "kind"),
)

# An org's own benchmark scores (0-100) for the simulator, on top of the bundled LLM Stats ones;
# feature "" applies to every feature. `model` is a genai-prices key, "provider_id/model_id".
benchmark_scores = Table(
    "benchmark_scores",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("feature", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    Column("benchmark", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("source", String(1000), nullable=False),
    Column("published_on", Date, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("org_id", "feature", "model", "benchmark"),
)

# How an org weighs benchmarks into one quality number; feature "" is the org's default.
benchmark_weights = Table(
    "benchmark_weights",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("feature", String(255), nullable=False),
    Column("benchmark", String(64), nullable=False),
    Column("weight", Float, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("org_id", "feature", "benchmark"),
)

# Stripe sync (see margindash.stripe_sync). Raw webhook events, once per (org, event id), kept
# for audit and replay; `status` is pending until applied, failed (with `last_error`) until a
# retry succeeds.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(32), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("type", String(100), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("api_version", String(64)),
    Column("object_id", String(255)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("processed_at", UTCDateTime),
    UniqueConstraint("org_id", "event_id"),
    Index(None, "status"),
)

# The latest known state of each Stripe object that revenue is derived from. `seen_at` (when
# Stripe said so) and `rank` (how final the status is) decide which of two snapshots is newer.
stripe_objects = Table(
    "stripe_objects",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("customer_ref", String(255)),
    Column("payload", Text, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("org_id", "livemode", "object_id"),
    Index(None, "org_id", "livemode", "customer_ref"),
    Index(None, "org_id", "object_type"),
)

# Which objects mention which (invoice, charge, payment intent, refund): the revenue of an
# object can depend on the ones it mentions, so a change re-books everything connected.
stripe_refs = Table(
    "stripe_refs",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("ref_id", String(255), nullable=False),
    PrimaryKeyConstraint("org_id", "livemode", "object_id", "ref_id"),
    Index(None, "org_id", "livemode", "ref_id"),
)

# The revenue entries each Stripe object booked (revenue_entries.revenue_id = "stripe:…").
stripe_entries = Table(
    "stripe_entries",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("revenue_id", String(255), nullable=False),
    Column("livemode", Boolean, nullable=False),
    Column("object_id", String(255), nullable=False),
    PrimaryKeyConstraint("org_id", "revenue_id"),
    Index(None, "org_id", "livemode", "object_id"),
)

# Manual Stripe customer → app customer mappings (they win over metadata).
stripe_customer_mappings = Table(
    "stripe_customer_mappings",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("stripe_customer_id", String(255), nullable=False),
    Column("customer_id", String(255), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("org_id", "stripe_customer_id"),
)

# Per-org webhook signing secrets (comma-separated while rotating) and booked mode.
stripe_org_settings = Table(
    "stripe_org_settings",
    metadata,
    Column("org_id", String(32), primary_key=True),
    Column("webhook_secrets", Text),
    Column("mode", String(8)),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Resumable sync state, e.g. the backfill's cursor per resource.
stripe_sync_state = Table(
    "stripe_sync_state",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("name", String(64), nullable=False),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("org_id", "name"),
)

# The price catalogue's history. Each snapshot is one version of the upstream data file
# (genai-prices' format, as canonical JSON, zlib-compressed). `accepted` snapshots are in force
# from `effective_from` until the next one (NULL: the bundled seed, in force since forever);
# `held` ones wait for review (`margindash pricing approve`).
price_snapshots = Table(
    "price_snapshots",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("effective_from", UTCDateTime),
    Column("provider_count", Integer, nullable=False),
    Column("model_count", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("review_reasons", Text),
    Column("reviewed_by", String(255)),
    Column("reviewed_at", UTCDateTime),
    Index(None, "status", "effective_from"),
    Index(None, "sha256"),
)

# Every model's prices in each snapshot, one row per conditional price, as USD per 1M tokens in
# exact decimal text: upstream prices carry up to 17 decimals ($0.0833…), finer than nano-USD.
model_prices = Table(
    "model_prices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("snapshot_id", BigInteger, ForeignKey("price_snapshots.id"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(255), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(255)),
    Column("starts_on", Date),  # the upstream's own start date of this price
    Column("time_window", String(32)),  # "16:30-00:30" UTC for off-peak prices
    Column("input_per_mtok", String(48)),
    Column("cached_input_per_mtok", String(48)),
    Column("cache_write_per_mtok", String(48)),
    Column("output_per_mtok", String(48)),
    Column("tiers", Text),  # JSON of tiered prices; the columns above hold their base
    Column("other_prices", Text),  # JSON of every other priced unit (reasoning, requests, …)
    Column("context_window", BigInteger),
    Column("deprecated", Boolean, nullable=False),
    Column("since", UTCDateTime),  # first in force with exactly this price; NULL: the seed
    UniqueConstraint("snapshot_id", "provider", "model", "position"),
)

# What a snapshot changed against the one in force before it.
price_changes = Table(
    "price_changes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("snapshot_id", BigInteger, ForeignKey("price_snapshots.id"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(255), nullable=False),
    Column("change", String(16), nullable=False),  # added | removed | repriced
    Column("old_prices", Text),  # JSON: the model's price rows before
    Column("new_prices", Text),
    Index(None, "snapshot_id"),
)

# Every price sync attempt; monitors read it (status: success | unchanged | failed | held).
pricing_sync_runs = Table(
    "pricing_sync_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("source", String(1024), nullable=False),
    Column("triggered_by", String(16), nullable=False),  # schedule | cli | api
    Column("snapshot_id", BigInteger),
    Column("sha256", String(64)),
    Column("model_count", Integer),
    Column("models_added", Integer),
    Column("models_removed", Integer),
    Column("models_repriced", Integer),
    Index(None, "started_at"),
)

# Every re-pricing of stored events: who, when, why, what it covered and what it changed.
repricing_runs = Table(
    "repricing_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("org_id", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),  # NULL: interrupted
    Column("actor", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("scope", String(16), nullable=False),  # range | unpriced
    Column("date_from", Date),
    Column("date_to", Date),
    Column("model", String(255)),
    Column("examined_events", BigInteger, nullable=False),
    Column("changed_events", BigInteger, nullable=False),
    Column("newly_priced_events", BigInteger, nullable=False),
    Column("cost_before_nanos", BigInteger, nullable=False),
    Column("cost_after_nanos", BigInteger, nullable=False),
    Column("by_model", Text),  # JSON: per model, events changed and cost before/after
    Index(None, "org_id", "started_at"),
)

# Whole-month totals per customer: the P&L by customer and the negative-month streaks read
# one row per customer instead of one per (customer, feature, model).
customer_months = Table(
    "customer_months",
    metadata,
    Column("org_id", String(32), nullable=False),
    Column("month", Date, nullable=False),
    Column("customer_id", String(255), nullable=False),
    *_rollup_measures(),
    PrimaryKeyConstraint("org_id", "month", "customer_id"),
    **ROLLUP_STORAGE,
)
