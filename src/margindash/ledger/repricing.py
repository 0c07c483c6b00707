"""Re-price stored events and move their rollups: after an alias or price arrives, or on request.

Events keep the cost they were priced with until someone re-prices them: a new catalogue,
alias or override never rewrites history by itself. A re-pricing prices each event again at its
own timestamp (`Pricer.price`), and for every event whose cost, model or provider changes it
updates the event and moves its rollup measures from the old (model, cost) to the new one, in
the same transaction, a batch at a time. An event no price covers any more keeps its cost:
re-pricing never turns a priced event into an unpriced one. Every real run is recorded in
`repricing_runs` (who, when, why, what it covered and changed); a dry run writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, TextClause, bindparam, select, text, update

from margindash.db.tables import ROLLUP_MEASURES, repricing_runs
from margindash.db.types import UTCDateTime
from margindash.ledger.rollups import upsert_assignments
from margindash.ledger.writer import run_transaction
from margindash.money import NANOS_PER_CENT
from margindash.orgs.service import Org
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.service import PricePlan, Pricer, Quote

_BATCH = 10_000  # per transaction: ~0.2 s of the SQLite write lock at full speed
# Rows are read and updated as plain SQL: at tens of thousands of events a second, SQLAlchemy's
# per-row type processing would cost more than the pricing itself.
_COLUMNS = (
    "id, customer_id, model_name, model, provider, occurred_at, prompt_tokens, "
    "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos"
)


EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9998, 12, 31)


@dataclass(frozen=True, slots=True)
class RepriceScope:
    """Which of an org's events to re-price."""

    date_from: date | None = None  # org-local days, both ends included
    date_to: date | None = None
    model: str | None = None  # the stored model or the model name as sent
    unpriced_only: bool = False

    def __post_init__(self) -> None:
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError("to: must not be before from")
        # Org-local days become UTC instants a day apart: stay clear of `datetime`'s ends.
        for name, day in (("from", self.date_from), ("to", self.date_to)):
            if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
                raise ValueError(f"{name}: outside {EARLIEST_DAY} to {LATEST_DAY}")


@dataclass(slots=True)
class RepriceLine:
    """Before and after of one customer's events of one model."""

    events: int = 0
    changed: int = 0
    cost_before: int = 0  # nano-USD
    cost_after: int = 0
    unpriced_before: int = 0
    unpriced_after: int = 0


LineKey = tuple[str, str, str]  # customer, model before, model after


@dataclass(slots=True)
class RepriceSummary:
    """What a re-pricing looked at and changed; costs in nano-USD."""

    examined: int = 0
    changed: int = 0
    priced: int = 0  # events that were unpriced and now have a cost
    cost_nanos: int = 0  # the cost those newly priced events gained
    kept: int = 0  # priced events no price covers any more: they keep their cost
    cost_before: int = 0
    cost_after: int = 0
    lines: dict[LineKey, RepriceLine] = field(default_factory=dict)
    run_id: int | None = None

    def by_model(self) -> dict[str, dict[str, int]]:
        """Per model after re-pricing: events, changed events, cost before and after."""
        totals: dict[str, dict[str, int]] = {}
        for (_, _, model), line in sorted(self.lines.items()):
            entry = totals.setdefault(
                model, {"events": 0, "changed": 0, "cost_before": 0, "cost_after": 0}
            )
            entry["events"] += line.events
            entry["changed"] += line.changed
            entry["cost_before"] += line.cost_before
            entry["cost_after"] += line.cost_after
        return totals


def reprice_events(
    pricer: Pricer,
    *,
    org: Org,
    scope: RepriceScope,
    actor: str,
    reason: str,
    dry_run: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> RepriceSummary:
    """Price the org's events in `scope` again; with `dry_run`, only say what would change."""
    pricer.rules.invalidate(org.id)
    pricer.reload()
    run_id = None if dry_run else _start_run(pricer, org, scope, actor, reason)
    tally = _Tally()
    plans = _DayPlans(pricer, org.id)
    after: tuple[Any, int] | None = None
    lock = not dry_run and pricer.engine.dialect.name == "postgresql"
    while True:
        # PostgreSQL: the rows stay locked until the batch commits, so no concurrent re-pricing
        # moves the same rollups twice (SQLite has one writer anyway).
        query = _batch_query(org, scope, after, lock=lock)
        if dry_run:
            with pricer.engine.connect() as conn:
                batch = _reprice_batch(conn, plans, query, write=False)
        else:
            batch = run_transaction(
                pricer.engine,
                lambda c: _reprice_batch(c, plans, query, write=True),  # noqa: B023
            )
        if batch is None:
            break
        after, part = batch
        tally.merge(part)
        if on_batch is not None:
            on_batch(part.examined)
    summary = tally.summary(run_id)
    if run_id is not None:
        _finish_run(pricer, run_id, summary)
    return summary


def reprice_unpriced(
    pricer: Pricer,
    *,
    org: Org,
    actor: str = "system",
    reason: str = "a price or alias now covers unpriced events",
) -> RepriceSummary:
    """Price every unpriced event of the org that its rules or the catalogue now cover."""
    return reprice_events(
        pricer, org=org, scope=RepriceScope(unpriced_only=True), actor=actor, reason=reason
    )


def _bounds(org: Org, scope: RepriceScope) -> tuple[datetime | None, datetime | None]:
    # Org-local days as UTC instants, so the (org_id, occurred_at) index does the selecting.
    def start_of(day: date) -> datetime:
        return datetime.combine(day, time.min, org.zone).astimezone(UTC)

    start = start_of(scope.date_from) if scope.date_from else None
    end = start_of(scope.date_to + timedelta(days=1)) if scope.date_to else None
    return start, end


def _batch_query(
    org: Org, scope: RepriceScope, after: tuple[Any, int] | None, *, lock: bool
) -> TextClause:
    """The next batch of events in scope, in a stable order (keyset pagination)."""
    where = ["org_id = :org_id"]
    params: dict[str, Any] = {"org_id": org.id}
    typed = []
    if scope.model is not None:
        where.append("(model = :model OR model_name = :model)")
        params["model"] = scope.model
    if scope.unpriced_only:
        # Unpriced events are few and found by their own index; walk them by id.
        where.append("cost_nanos IS NULL")
        order = "id"
        if after is not None:
            where.append("id > :after_id")
            params["after_id"] = after[1]
    else:
        order = "occurred_at, id"
        start, end = _bounds(org, scope)
        for name, op, bound in (("start", ">=", start), ("end", "<", end)):
            if bound is not None:
                where.append(f"occurred_at {op} :{name}")
                params[name] = bound
                typed.append(bindparam(name, type_=UTCDateTime))
        if after is not None:
            # The stored value as read, so it compares exactly on either engine.
            where.append("occurred_at >= :after_at AND (occurred_at > :after_at OR id > :after_id)")
            params["after_at"], params["after_id"] = after
    sql = (
        f"SELECT {_COLUMNS} FROM usage_events WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT {_BATCH}" + (" FOR UPDATE" if lock else "")
    )
    return text(sql).bindparams(*typed, **params)


def _utc(value: Any) -> datetime:
    """A timestamp as stored (SQLite: naive UTC text) as an aware UTC datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _Tally:
    """What a re-pricing saw, counted cheaply: most events do not change.

    `totals` has, per (customer, model), events, cost before and unpriced events before;
    `changes` has, per (customer, model before, model after), the changed events, their cost
    before and after, how many were unpriced, and the cost those gained.
    """

    def __init__(self) -> None:
        self.examined = 0
        self.kept = 0
        self.totals: dict[tuple[str, str], list[int]] = {}
        self.changes: dict[LineKey, list[int]] = {}

    def merge(self, other: _Tally) -> None:
        self.examined += other.examined
        self.kept += other.kept
        _add_counts(self.totals, other.totals)
        _add_counts(self.changes, other.changes)

    def summary(self, run_id: int | None) -> RepriceSummary:
        summary = RepriceSummary(examined=self.examined, kept=self.kept, run_id=run_id)
        unchanged = {key: list(counts) for key, counts in self.totals.items()}
        for (customer, before_model, after_model), change in self.changes.items():
            count, before, after, was_unpriced, gained = change
            summary.changed += count
            summary.priced += was_unpriced
            summary.cost_nanos += gained
            summary.cost_before += before
            summary.cost_after += after
            rest = unchanged[(customer, before_model)]
            rest[0] -= count
            rest[1] -= before
            rest[2] -= was_unpriced
            summary.lines[(customer, before_model, after_model)] = RepriceLine(
                count, count, before, after, was_unpriced, 0
            )
        for (customer, model), (events, before, unpriced) in unchanged.items():
            summary.cost_before += before
            summary.cost_after += before
            line = summary.lines.get((customer, model, model))
            if line is None:
                summary.lines[(customer, model, model)] = RepriceLine(
                    events, 0, before, before, unpriced, unpriced
                )
                continue
            line.events += events
            line.cost_before += before
            line.cost_after += before
            line.unpriced_before += unpriced
            line.unpriced_after += unpriced
        return summary


Key = TypeVar("Key")


def _add_counts(target: dict[Key, list[int]], source: dict[Key, list[int]]) -> None:
    for key, counts in source.items():
        mine = target.get(key)
        if mine is None:
            target[key] = counts
        else:
            for i, value in enumerate(counts):
                mine[i] += value


def _reprice_batch(
    conn: Connection, plans: _DayPlans, query: TextClause, *, write: bool
) -> tuple[tuple[Any, int], _Tally] | None:
    rows = conn.execute(query).all()
    if not rows:
        return None
    tally = _Tally()
    totals, changes = tally.totals, tally.changes
    updates = []
    for event_id, customer, model_name, model, provider, occurred, *tokens, before in rows:
        total = totals.get((customer, model))
        if total is None:
            total = totals[(customer, model)] = [0, 0, 0]
        total[0] += 1
        if before is None:
            total[2] += 1
        else:
            total[1] += before
        quote = plans.quote(model_name, provider, occurred, TokenCounts(*tokens))
        after = quote.cost_nanos
        if after is None:
            tally.kept += before is not None  # no price covers it now: it keeps its cost
            continue
        if after == before and quote.model == model and quote.provider == provider:
            continue
        key = (customer, model, quote.model)
        change = changes.get(key)
        if change is None:
            change = changes[key] = [0, 0, 0, 0, 0]
        change[0] += 1
        change[1] += before or 0
        change[2] += after
        if before is None:
            change[3] += 1
            change[4] += after
        updates.append(
            (event_id, quote.model, quote.provider, after, quote.price_source, quote.price_ref)
        )
    tally.examined = len(rows)
    if write and updates:
        _write_changes(conn, updates)
    last = rows[-1]
    return (last.occurred_at, last.id), tally


class _DayPlans:
    """Price stored events with one plan per (name, provider, UTC day) where one holds all day.

    Equal to `Pricer.price` per event, without its per-event look-ups: events of a day when a
    new catalogue version takes effect are priced one by one.
    """

    def __init__(self, pricer: Pricer, org_id: str) -> None:
        self.pricer = pricer
        self.org_id = org_id
        self.plans: dict[tuple[str, str | None, Any], PricePlan | None] = {}

    def quote(
        self, model_name: str, provider: str | None, occurred: Any, tokens: TokenCounts
    ) -> Quote:
        # SQLite keeps naive UTC text, whose first ten characters are the UTC day.
        day = occurred[:10] if type(occurred) is str else occurred.astimezone(UTC).date()
        key = (model_name, provider, day)
        try:
            plan = self.plans[key]
        except KeyError:
            plan = self.plans[key] = self.pricer.plan_for_day(
                org_id=self.org_id,
                model_name=model_name,
                provider=provider,
                day=_utc(occurred).date(),
            )
        if plan is not None:
            return plan.quote(tokens) if plan.hourly is None else plan.quote(tokens, _utc(occurred))
        return self.pricer.price(
            org_id=self.org_id,
            model_name=model_name,
            provider=provider,
            tokens=tokens,
            at=_utc(occurred),
        )


# Changed events go to a temporary table; the rollups and the events are then updated from it
# by a few set-based statements, so the database does the per-event work, not Python.
_INTEGER = {"sqlite": "INTEGER", "postgresql": "BIGINT"}
_DAY = {"sqlite": "TEXT", "postgresql": "DATE"}  # as `usage_events.day` is stored
_TEMPORARY = {"sqlite": "", "postgresql": " ON COMMIT DELETE ROWS"}
_MONTH_OF_DAY = {
    "sqlite": "substr(d.day, 1, 8) || '01'",  # days are stored as ISO text
    "postgresql": "CAST(date_trunc('month', d.day) AS date)",
}
# Each changed event leaves the rollup row of its old (model, cost) (sign -1) and joins the one
# of its new (sign 1); in the same row (the model did not change) events and tokens cancel out
# and only the cost moves. The max stays a max. Re-pricing never makes an event unpriced.
# CROSS JOIN fixes the order: SQLite would otherwise scan every event to probe the changed ones.
_DAILY_MOVES = (
    "INSERT INTO reprice_daily "
    "SELECT e.org_id, e.customer_id, e.day, e.feature, "
    "CASE WHEN s.sign < 0 THEN e.model ELSE c.model END, "
    "SUM(s.sign), SUM(s.sign * e.prompt_tokens), SUM(s.sign * e.completion_tokens), "
    "SUM(s.sign * e.cached_tokens), SUM(s.sign * e.cache_write_tokens), "
    "SUM(s.sign * e.reasoning_tokens), "
    "SUM(CASE WHEN s.sign < 0 THEN -COALESCE(e.cost_nanos, 0) ELSE c.cost_nanos END), "
    "SUM(CASE WHEN s.sign < 0 AND e.cost_nanos IS NULL THEN -1 ELSE 0 END), "
    "SUM(s.sign * CASE WHEN e.estimated THEN 1 ELSE 0 END), "
    f"SUM(s.sign * COALESCE(e.revenue_cents, 0)) * {NANOS_PER_CENT}, "
    "MAX(CASE WHEN s.sign > 0 THEN e.prompt_tokens ELSE 0 END) "
    "FROM reprice_changes AS c CROSS JOIN usage_events AS e "
    "CROSS JOIN (SELECT -1 AS sign UNION ALL SELECT 1) AS s "
    "WHERE e.id = c.id GROUP BY 1, 2, 3, 4, 5"
)
# Not UPDATE … FROM: SQLite would scan every event to probe the changed ones.
_UPDATE_EVENTS = (
    "UPDATE usage_events SET (model, provider, cost_nanos, price_source, price_ref) = "
    "(SELECT c.model, c.provider, c.cost_nanos, c.price_source, c.price_ref "
    "FROM reprice_changes AS c WHERE c.id = usage_events.id) "
    "WHERE id IN (SELECT id FROM reprice_changes)"
)


def _write_changes(conn: Connection, changes: list[tuple[Any, ...]]) -> None:
    """Move the changed events' rollup measures, then update the events, all in SQL."""
    dialect = conn.dialect.name
    marker = "?" if dialect == "sqlite" else "%s"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for sql in _temporary_tables(dialect):
            cursor.execute(sql)
        cursor.executemany(
            "INSERT INTO reprice_changes (id, model, provider, cost_nanos, price_source, "
            f"price_ref) VALUES ({', '.join([marker] * 6)})",
            changes,
        )
        cursor.execute(_DAILY_MOVES)
        for sql in _rollup_upserts(dialect):
            cursor.execute(sql)
        cursor.execute(_UPDATE_EVENTS)
        updated = cursor.rowcount
        if dialect == "sqlite":  # PostgreSQL empties them at commit
            cursor.execute("DELETE FROM reprice_changes")
            cursor.execute("DELETE FROM reprice_daily")
    finally:
        cursor.close()
    if updated != len(changes):  # the rows are locked or the only writer: a bug if it happens
        raise RuntimeError(f"re-pricing updated {updated} of {len(changes)} events")


@cache
def _temporary_tables(dialect: str) -> tuple[str, ...]:
    integer, end = _INTEGER[dialect], _TEMPORARY[dialect]
    measures = ", ".join(f"{m} {integer} NOT NULL" for m in ROLLUP_MEASURES)
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS reprice_changes (id {integer} PRIMARY KEY, "
        f"model TEXT NOT NULL, provider TEXT, cost_nanos {integer} NOT NULL, "
        f"price_source TEXT, price_ref TEXT){end}",
        "CREATE TEMP TABLE IF NOT EXISTS reprice_daily (org_id TEXT NOT NULL, "
        f"customer_id TEXT NOT NULL, day {_DAY[dialect]} NOT NULL, feature TEXT NOT NULL, "
        f"model TEXT NOT NULL, {measures}){end}",
        # Left behind by a batch that failed after filling them (SQLite keeps them until then).
        "DELETE FROM reprice_changes",
        "DELETE FROM reprice_daily",
    )


@cache
def _rollup_upserts(dialect: str) -> tuple[str, ...]:
    """The daily moves added to each rollup table, in key order (the lock order of concurrent
    PostgreSQL writers)."""
    month = _MONTH_OF_DAY[dialect]
    sums = ", ".join([f"SUM(d.{m})" for m in ROLLUP_MEASURES[:-1]] + ["MAX(d.max_prompt_tokens)"])
    statements = []
    for table, key in (
        ("daily_rollups", {"day": "d.day", "feature": "d.feature", "model": "d.model"}),
        ("monthly_rollups", {"month": month, "feature": "d.feature", "model": "d.model"}),
        ("customer_months", {"month": month}),
    ):
        columns = ["org_id", "customer_id", *key]
        groups = ", ".join(str(n) for n in range(1, len(columns) + 1))
        statements.append(
            f"INSERT INTO {table} ({', '.join(columns)}, {', '.join(ROLLUP_MEASURES)}) "
            f"SELECT d.org_id, d.customer_id, {', '.join(key.values())}, {sums} "
            f"FROM reprice_daily AS d WHERE true GROUP BY {groups} ORDER BY {groups} "
            f"ON CONFLICT ({', '.join(columns)}) {upsert_assignments(dialect, table)}"
        )
    return tuple(statements)


def _start_run(pricer: Pricer, org: Org, scope: RepriceScope, actor: str, reason: str) -> int:
    with pricer.engine.begin() as conn:
        inserted = conn.execute(
            repricing_runs.insert().values(
                org_id=org.id,
                started_at=datetime.now(UTC),
                actor=actor[:255],
                reason=reason,
                scope="unpriced" if scope.unpriced_only else "range",
                date_from=scope.date_from,
                date_to=scope.date_to,
                model=scope.model,
                examined_events=0,
                changed_events=0,
                newly_priced_events=0,
                cost_before_nanos=0,
                cost_after_nanos=0,
            )
        )
        return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def _finish_run(pricer: Pricer, run_id: int, summary: RepriceSummary) -> None:
    with pricer.engine.begin() as conn:
        conn.execute(
            update(repricing_runs)
            .where(repricing_runs.c.id == run_id)
            .values(
                finished_at=datetime.now(UTC),
                examined_events=summary.examined,
                changed_events=summary.changed,
                newly_priced_events=summary.priced,
                cost_before_nanos=summary.cost_before,
                cost_after_nanos=summary.cost_after,
                by_model=json.dumps(summary.by_model(), sort_keys=True),
            )
        )


@dataclass(frozen=True, slots=True)
class RepricingRun:
    """A recorded re-pricing."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    actor: str
    reason: str
    scope: str
    date_from: date | None
    date_to: date | None
    model: str | None
    examined_events: int
    changed_events: int
    newly_priced_events: int
    cost_before_nanos: int
    cost_after_nanos: int
    by_model: dict[str, dict[str, int]]


def list_repricings(engine: Engine, *, org: Org, limit: int = 20) -> list[RepricingRun]:
    """The org's re-pricings, newest first."""
    t = repricing_runs
    with engine.connect() as conn:
        rows = conn.execute(
            select(t).where(t.c.org_id == org.id).order_by(t.c.id.desc()).limit(limit)
        ).all()
    return [_run(r) for r in rows]


def _run(row: Any) -> RepricingRun:
    fields = {c: getattr(row, c) for c in RepricingRun.__dataclass_fields__ if c != "by_model"}
    return RepricingRun(**fields, by_model=json.loads(row.by_model) if row.by_model else {})


def changed_lines(summary: RepriceSummary) -> Iterable[tuple[LineKey, RepriceLine]]:
    """The customer and model lines whose cost or model changes, largest change first."""
    lines = [(k, v) for k, v in summary.lines.items() if v.changed]
    return sorted(lines, key=lambda kv: (-abs(kv[1].cost_after - kv[1].cost_before), kv[0]))
