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
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, TextClause, bindparam, select, text, update

from margindash.db.bulk import sqlite_value
from margindash.db.tables import repricing_runs
from margindash.db.types import UTCDateTime
from margindash.ledger.rollups import Measures, RollupDeltas, RollupKey
from margindash.ledger.writer import run_transaction
from margindash.money import NANOS_PER_CENT
from margindash.orgs.service import Org
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.service import Pricer, Quote

_BATCH = 10_000  # per transaction: ~0.2 s of the SQLite write lock at full speed
# Rows are read and updated as plain SQL: at tens of thousands of events a second, SQLAlchemy's
# per-row type processing would cost more than the pricing itself.
_COLUMNS = (
    "id, customer_id, feature, model_name, model, provider, occurred_at, day, prompt_tokens, "
    "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos, "
    "estimated, revenue_cents"
)
_UPDATE = (
    "UPDATE usage_events SET model = {p}, provider = {p}, cost_nanos = {p}, price_source = {p}, "
    "price_ref = {p} WHERE id = {p}"
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


def _measures(row: Any, cost_nanos: int | None) -> Measures:
    return Measures(
        events=1,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cached_tokens=row.cached_tokens,
        cache_write_tokens=row.cache_write_tokens,
        reasoning_tokens=row.reasoning_tokens,
        cost_nanos=cost_nanos or 0,
        unpriced_events=0 if cost_nanos is not None else 1,
        estimated_events=1 if row.estimated else 0,
        revenue_nanos=(row.revenue_cents or 0) * NANOS_PER_CENT,
        max_prompt_tokens=row.prompt_tokens,
    )


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
    after: tuple[Any, int] | None = None
    lock = not dry_run and pricer.engine.dialect.name == "postgresql"
    while True:
        # PostgreSQL: the rows stay locked until the batch commits, so no concurrent re-pricing
        # moves the same rollups twice (SQLite has one writer anyway).
        query = _batch_query(org, scope, after, lock=lock)
        if dry_run:
            with pricer.engine.connect() as conn:
                batch = _reprice_batch(conn, pricer, org, query, write=False)
        else:
            batch = run_transaction(
                pricer.engine,
                lambda c: _reprice_batch(c, pricer, org, query, write=True),  # noqa: B023
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


def _day(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


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
    conn: Connection, pricer: Pricer, org: Org, query: TextClause, *, write: bool
) -> tuple[tuple[Any, int], _Tally] | None:
    rows = conn.execute(query).all()
    if not rows:
        return None
    price, org_id = pricer.price, org.id
    tally = _Tally()
    totals, changes = tally.totals, tally.changes
    moves = _RollupMoves(org_id)
    updates = []
    for row in rows:
        (event_id, customer, _, model_name, model, provider, occurred, *_, before, _, _) = row
        total = totals.get((customer, model))
        if total is None:
            total = totals[(customer, model)] = [0, 0, 0]
        total[0] += 1
        if before is None:
            total[2] += 1
        else:
            total[1] += before
        quote = price(
            org_id=org_id,
            model_name=model_name,
            provider=provider,
            tokens=TokenCounts(row[8], row[9], row[10], row[11], row[12]),
            at=_utc(occurred),
        )
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
            (quote.model, quote.provider, after, quote.price_source, quote.price_ref, event_id)
        )
        moves.add(row, quote)
    tally.examined = len(rows)
    if write and updates:
        marker = "?" if conn.dialect.name == "sqlite" else "%s"
        _update_existing(conn, _UPDATE.format(p=marker), updates)
        moves.write(conn, pricer.engine)
    last = rows[-1]
    return (last.occurred_at, last.id), tally


class _RollupMoves:
    """Rollup changes of re-priced events: each event's old price out, the new one in."""

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.moved = RollupDeltas()
        # Same rollup row (the model did not change): only cost and the unpriced count move,
        # events and tokens would cancel out. Summed per row and written as two columns.
        self.in_place: dict[RollupKey, list[int]] = {}

    def add(self, row: Any, quote: Quote) -> None:
        day = _day(row.day)
        old_key = RollupKey(self.org_id, day, row.customer_id, row.feature, row.model)
        if quote.model == row.model:
            change = self.in_place.get(old_key)
            if change is None:
                change = self.in_place[old_key] = [0, 0]
            change[0] += (quote.cost_nanos or 0) - (row.cost_nanos or 0)
            change[1] += (quote.cost_nanos is None) - (row.cost_nanos is None)
            return
        self.moved.add(old_key, _measures(row, row.cost_nanos), sign=-1)
        self.moved.add(
            RollupKey(self.org_id, day, row.customer_id, row.feature, quote.model),
            _measures(row, quote.cost_nanos),
        )

    def write(self, conn: Connection, engine: Engine) -> None:
        self.moved.write(conn, engine)
        if not self.in_place:
            return
        monthly: dict[tuple[Any, ...], list[int]] = {}
        customers: dict[tuple[Any, ...], list[int]] = {}
        for key, (cost, unpriced) in self.in_place.items():
            first = key.day.replace(day=1)
            for target, target_key in (
                (monthly, key._replace(day=first)),
                (customers, (key.org_id, first, key.customer_id)),
            ):
                change = target.setdefault(target_key, [0, 0])
                change[0] += cost
                change[1] += unpriced
        sqlite = engine.dialect.name == "sqlite"
        for table, period, changes, keyed in (
            ("daily_rollups", "day", self.in_place, _DETAIL),
            ("monthly_rollups", "month", monthly, _DETAIL),
            ("customer_months", "month", customers, _CUSTOMER),
        ):
            # SQLite stores the day as text; PostgreSQL has concurrent writers, which must lock
            # rows in one order (SQLite has a single writer, so it skips the sort).
            items = changes.items() if sqlite else sorted(changes.items())
            rows = [
                (cost, unpriced, org, sqlite_value(day) if sqlite else day, *rest)
                for (org, day, *rest), (cost, unpriced) in items
            ]
            sql = _IN_PLACE.format(table=table, period=period, p="?" if sqlite else "%s")
            _update_existing(conn, sql + keyed.format(p="?" if sqlite else "%s"), rows)


# The rows exist (they count these events), so an UPDATE is enough, and cheaper than upserting
# every measure.
_IN_PLACE = (
    "UPDATE {table} SET cost_nanos = cost_nanos + {p}, unpriced_events = unpriced_events + {p} "
    "WHERE org_id = {p} AND {period} = {p} AND customer_id = {p}"
)
_DETAIL = " AND feature = {p} AND model = {p}"
_CUSTOMER = ""


def _update_existing(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Run an UPDATE per row through the driver; each must match exactly one row, else the
    batch fails (and rolls back) rather than leave events and rollups out of step."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
        updated = cursor.rowcount
    finally:
        cursor.close()
    if updated != len(rows):
        raise RuntimeError(f"re-pricing found {updated} of {len(rows)} rows to update")


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
