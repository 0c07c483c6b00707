"""Daily and monthly rollups, updated in the same transaction as the rows they summarise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine

from margindash.db.bulk import BulkInsert
from margindash.db.tables import ROLLUP_MEASURES, metadata
from margindash.money import NANOS_PER_CENT


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
        # Spelled out: this runs once per ingested event, and a getattr loop is 3x slower.
        self.events += sign * other.events
        self.prompt_tokens += sign * other.prompt_tokens
        self.completion_tokens += sign * other.completion_tokens
        self.cached_tokens += sign * other.cached_tokens
        self.cache_write_tokens += sign * other.cache_write_tokens
        self.reasoning_tokens += sign * other.reasoning_tokens
        self.cost_nanos += sign * other.cost_nanos
        self.unpriced_events += sign * other.unpriced_events
        self.estimated_events += sign * other.estimated_events
        self.revenue_nanos += sign * other.revenue_nanos
        if other.max_prompt_tokens > self.max_prompt_tokens:
            self.max_prompt_tokens = other.max_prompt_tokens

    def as_tuple(self) -> tuple[int, ...]:
        return (
            self.events,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cost_nanos,
            self.unpriced_events,
            self.estimated_events,
            self.revenue_nanos,
            self.max_prompt_tokens,
        )


_ADDITIVE = tuple(f.name for f in fields(Measures) if f.name != "max_prompt_tokens")
assert tuple(f.name for f in fields(Measures)) == ROLLUP_MEASURES


class RollupKey(NamedTuple):
    """Where a delta lands: org, org-local day, customer, feature, model.

    A tuple, so hashing and sorting thousands of keys per commit stay in C.
    """

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
        """Upsert daily, monthly and customer-month rows (sorted: one lock order for all)."""
        if not self.by_key:
            return
        monthly: dict[tuple[Any, ...], Measures] = {}
        customers: dict[tuple[Any, ...], Measures] = {}
        for key, measures in self.by_key.items():
            month = key.day.replace(day=1)
            for target, target_key in (
                (monthly, (key.org_id, month, key.customer_id, key.feature, key.model)),
                (customers, (key.org_id, month, key.customer_id)),
            ):
                current = target.get(target_key)
                if current is None:
                    current = target[target_key] = Measures()
                current.add(measures)
        dialect = engine.dialect.name
        _statement(dialect, "daily_rollups", DAILY_KEY).execute(conn, _rows(self.by_key))
        _statement(dialect, "monthly_rollups", MONTHLY_KEY).execute(conn, _rows(monthly))
        _statement(dialect, "customer_months", CUSTOMER_KEY).execute(conn, _rows(customers))


# The primary keys of the rollup tables, in order.
DAILY_KEY = ("org_id", "day", "customer_id", "feature", "model")
MONTHLY_KEY = ("org_id", "month", "customer_id", "feature", "model")
CUSTOMER_KEY = ("org_id", "month", "customer_id")


def _rows(by_key: Mapping[Any, Measures]) -> list[tuple[Any, ...]]:
    return [(*key, *by_key[key].as_tuple()) for key in sorted(by_key)]


# The month of a stored org-local day, per dialect.
MONTH_OF_DAY = {
    "sqlite": "substr({day}, 1, 8) || '01'",  # days are stored as ISO text
    "postgresql": "CAST(date_trunc('month', {day}) AS date)",
}
# What one stored event adds to its rollup row, in ROLLUP_MEASURES order.
_EVENT_MEASURES = (
    "1",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "COALESCE(cost_nanos, 0)",
    "CASE WHEN cost_nanos IS NULL THEN 1 ELSE 0 END",
    "CASE WHEN estimated THEN 1 ELSE 0 END",
    f"COALESCE(revenue_cents, 0) * {NANOS_PER_CENT}",
    "prompt_tokens",
)
# The same, summed over a group of events (MAX for the largest prompt).
_GROUP_MEASURES = (
    "COUNT(*)",
    *(f"SUM({m})" for m in _EVENT_MEASURES[1:-1]),
    "MAX(prompt_tokens)",
)


@cache
def event_rollup_upserts(dialect: str, source: str) -> tuple[str, ...]:
    """Statements that add new events to the daily, monthly and customer-month rollups.

    `source` is a FROM … WHERE fragment giving the new rows with usage_events' columns. The
    database does the adding itself: summing in Python and sending every rollup row back as
    parameters cost more than inserting the events.

    PostgreSQL groups the events first (one statement may not update a row twice) and upserts
    in key order, the lock order every writer keeps. SQLite upserts event by event: with one
    writer there is no lock order to keep, and its GROUP BY cost about 6 µs a group, two to
    three times an upsert. Measured per 1,000-event commit: 1,000 customers, 38 → 24 ms;
    50 customers, 27 → 16 to 21 ms; one rollup row for all, 18 → 19 ms.
    """
    month = MONTH_OF_DAY[dialect].format(day="day")
    grouped = dialect != "sqlite"
    measures = ", ".join(_GROUP_MEASURES if grouped else _EVENT_MEASURES)
    statements = []
    for table, columns, values in (
        ("daily_rollups", DAILY_KEY, DAILY_KEY),
        ("monthly_rollups", MONTHLY_KEY, ("org_id", month, "customer_id", "feature", "model")),
        ("customer_months", CUSTOMER_KEY, ("org_id", month, "customer_id")),
    ):
        groups = ", ".join(str(n) for n in range(1, len(columns) + 1))
        grouping = f" GROUP BY {groups} ORDER BY {groups}" if grouped else ""
        statements.append(
            f"INSERT INTO {table} ({', '.join(columns)}, {', '.join(ROLLUP_MEASURES)}) "
            f"SELECT {', '.join(values)}, {measures} {source}{grouping} "
            f"ON CONFLICT ({', '.join(columns)}) {upsert_assignments(dialect, table)}"
        )
    return tuple(statements)


def upsert_assignments(dialect: str, table: str) -> str:
    """The ON CONFLICT action that adds a row's measures to the rollup row already there."""
    biggest = "GREATEST" if dialect == "postgresql" else "MAX"
    updates = [f"{name} = {table}.{name} + excluded.{name}" for name in _ADDITIVE]
    updates.append(
        f"max_prompt_tokens = {biggest}({table}.max_prompt_tokens, excluded.max_prompt_tokens)"
    )
    return "DO UPDATE SET " + ", ".join(updates)


@cache
def _statement(dialect: str, table: str, key: tuple[str, ...]) -> BulkInsert:
    return BulkInsert(
        dialect=dialect,
        table=metadata.tables[table],
        columns=(*key, *ROLLUP_MEASURES),
        conflict=key,
        on_conflict=upsert_assignments(dialect, table),
    )
