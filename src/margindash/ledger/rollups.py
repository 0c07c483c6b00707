"""Daily and monthly rollups, updated in the same transaction as the rows they summarise."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date

from sqlalchemy import Connection, Engine, Table

from margindash.db.engine import greatest, upsert
from margindash.db.tables import ROLLUP_MEASURES, daily_rollups, monthly_rollups


@dataclass(slots=True)
class Measures:
    """What a rollup row adds up. Every field is an integer; money in nano-USD."""

    events: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanos: int = 0
    unpriced_events: int = 0
    estimated_events: int = 0
    revenue_nanos: int = 0
    max_prompt_tokens: int = 0

    def add(self, other: Measures, sign: int = 1) -> None:
        """Add (or, with sign -1, remove) another row's measures; the max stays a max."""
        for name in _ADDITIVE:
            setattr(self, name, getattr(self, name) + sign * getattr(other, name))
        self.max_prompt_tokens = max(self.max_prompt_tokens, other.max_prompt_tokens)


_ADDITIVE = tuple(f.name for f in fields(Measures) if f.name != "max_prompt_tokens")
assert tuple(f.name for f in fields(Measures)) == ROLLUP_MEASURES


@dataclass(frozen=True, slots=True, order=True)
class RollupKey:
    """Where a delta lands: org, org-local day, customer, feature, model."""

    org_id: str
    day: date
    customer_id: str
    feature: str
    model: str


class RollupDeltas:
    """Changes to the rollups collected during one transaction, written at its end."""

    def __init__(self) -> None:
        self.by_key: dict[RollupKey, Measures] = {}

    def add(self, key: RollupKey, measures: Measures, sign: int = 1) -> None:
        current = self.by_key.get(key)
        if current is None:
            current = self.by_key[key] = Measures()
        current.add(measures, sign)

    def write(self, conn: Connection, engine: Engine) -> None:
        """Upsert daily and monthly rows (sorted, so concurrent writers lock in one order)."""
        if not self.by_key:
            return
        monthly: dict[RollupKey, Measures] = {}
        for key, measures in self.by_key.items():
            month_key = RollupKey(
                key.org_id, key.day.replace(day=1), key.customer_id, key.feature, key.model
            )
            monthly.setdefault(month_key, Measures()).add(measures)
        _upsert(conn, engine, daily_rollups, "day", self.by_key)
        _upsert(conn, engine, monthly_rollups, "month", monthly)


def _upsert(
    conn: Connection, engine: Engine, table: Table, period: str, rows: Mapping[RollupKey, Measures]
) -> None:
    stmt = upsert(engine, table)
    updates = {name: table.c[name] + stmt.excluded[name] for name in _ADDITIVE}
    updates["max_prompt_tokens"] = greatest(
        engine, table.c.max_prompt_tokens, stmt.excluded.max_prompt_tokens
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_id", period, "customer_id", "feature", "model"], set_=updates
    )
    conn.execute(stmt, list(_as_params(period, sorted(rows.items()))))


def _as_params(
    period: str, rows: Iterable[tuple[RollupKey, Measures]]
) -> Iterable[dict[str, object]]:
    for key, m in rows:
        yield {
            "org_id": key.org_id,
            period: key.day,
            "customer_id": key.customer_id,
            "feature": key.feature,
            "model": key.model,
            "events": m.events,
            "prompt_tokens": m.prompt_tokens,
            "completion_tokens": m.completion_tokens,
            "cached_tokens": m.cached_tokens,
            "cache_write_tokens": m.cache_write_tokens,
            "reasoning_tokens": m.reasoning_tokens,
            "cost_nanos": m.cost_nanos,
            "unpriced_events": m.unpriced_events,
            "estimated_events": m.estimated_events,
            "revenue_nanos": m.revenue_nanos,
            "max_prompt_tokens": m.max_prompt_tokens,
        }
