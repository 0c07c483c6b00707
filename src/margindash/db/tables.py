"""Every table, as SQLAlchemy Core. Alembic migrations in `migrations/` create them.

Money columns are integers: costs and revenue in nano-units (1e-9) of USD, source revenue in the
currency's minor units. Every row carries `org_id`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    Index(None, "org_id", "model_name", "cost_nanos"),
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
    UniqueConstraint("org_id", "alias"),
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
