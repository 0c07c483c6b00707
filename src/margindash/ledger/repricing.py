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
from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect, Engine, select, update

from margindash.db.tables import repricing_runs
from margindash.db.types import UTCDateTime
from margindash.ledger.reprice_writes import driver_cursor, write_changes
from margindash.ledger.writer import run_transaction
from margindash.orgs.service import Org
from margindash.pricing.catalogue import TokenCounts, picos_to_nanos
from margindash.pricing.overrides import Discount
from margindash.pricing.service import PricePlan, Pricer, Quote
from margindash.reports.periods import EARLIEST_DAY, LATEST_DAY

_BATCH = 10_000  # per transaction: ~0.2 s of the SQLite write lock at full speed
# Rows are read and updated as plain SQL through the driver's cursor: at tens of thousands of
# events a second, SQLAlchemy's per-row work would cost more than the pricing itself.
_COLUMNS = (
    "id, customer_id, model_name, model, provider, occurred_at, prompt_tokens, "
    "completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos"
)


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
        for (_, _, model), line in self.lines.items():
            entry = totals.setdefault(
                model, {"events": 0, "changed": 0, "cost_before": 0, "cost_after": 0}
            )
            entry["events"] += line.events
            entry["changed"] += line.changed
            entry["cost_before"] += line.cost_before
            entry["cost_after"] += line.cost_after
        return dict(sorted(totals.items()))


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
        query = _batch_query(pricer.engine.dialect, org, scope, after, lock=lock)
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


_BatchQuery = tuple[str, dict[str, Any]]  # SQL in the driver's parameter style, parameters
_PARAMETER = {"sqlite": ":{}", "postgresql": "%({})s"}


def _batch_query(
    dialect: Dialect, org: Org, scope: RepriceScope, after: tuple[Any, int] | None, *, lock: bool
) -> _BatchQuery:
    """The next batch of events in scope, in a stable order (keyset pagination)."""
    param = _PARAMETER[dialect.name].format
    where = [f"org_id = {param('org_id')}"]
    params: dict[str, Any] = {"org_id": org.id}
    if scope.model is not None:
        where.append(f"(model = {param('model')} OR model_name = {param('model')})")
        params["model"] = scope.model
    if scope.unpriced_only:
        # Unpriced events are few and found by their own index; walk them by id.
        where.append("cost_nanos IS NULL")
        order = "id"
        if after is not None:
            where.append(f"id > {param('after_id')}")
            params["after_id"] = after[1]
    else:
        order = "occurred_at, id"
        start, end = _bounds(org, scope)
        for name, op, bound in (("start", ">=", start), ("end", "<", end)):
            if bound is not None:
                where.append(f"occurred_at {op} {param(name)}")
                params[name] = _as_stored(dialect, bound)
        if after is not None:
            # The stored value as read, so it compares exactly on either engine.
            at, after_id = param("after_at"), param("after_id")
            where.append(f"occurred_at >= {at} AND (occurred_at > {at} OR id > {after_id})")
            params["after_at"], params["after_id"] = after
    sql = (
        f"SELECT {_COLUMNS} FROM usage_events WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT {_BATCH}" + (" FOR UPDATE" if lock else "")
    )
    return sql, params


def _as_stored(dialect: Dialect, instant: datetime) -> Any:
    """An instant as `usage_events.occurred_at` stores it (SQLite: naive UTC text)."""
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return instant if process is None else process(instant)


def _utc(value: Any) -> datetime:
    """A timestamp as stored (SQLite: naive UTC text) as an aware UTC datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _Tally:
    """What a re-pricing saw, counted cheaply: most events do not change.

    Per (customer, model): `events`, the `cost` of the priced ones and the `unpriced` ones. Per
    (customer, model before, model after) in `changes`: the changed events, their cost before
    and after, how many were unpriced, and the cost those gained. Counters are ints, not lists:
    the garbage collector would walk tens of thousands of lists again and again.
    """

    def __init__(self) -> None:
        self.examined = 0
        self.kept = 0
        self.events: dict[tuple[str, str], int] = {}
        self.cost: dict[tuple[str, str], int] = {}
        self.unpriced: dict[tuple[str, str], int] = {}
        self.changes: dict[LineKey, tuple[int, int, int, int, int]] = {}

    def merge(self, other: _Tally) -> None:
        self.examined += other.examined
        self.kept += other.kept
        for mine, theirs in (
            (self.events, other.events),
            (self.cost, other.cost),
            (self.unpriced, other.unpriced),
        ):
            get = mine.get
            for key, value in theirs.items():
                mine[key] = get(key, 0) + value
        for line, change in other.changes.items():
            known = self.changes.get(line)
            self.changes[line] = change if known is None else _sum(known, change)

    def summary(self, run_id: int | None) -> RepriceSummary:
        summary = RepriceSummary(examined=self.examined, kept=self.kept, run_id=run_id)
        cost, unpriced = self.cost, self.unpriced
        unchanged = {
            key: [events, cost.get(key, 0), unpriced.get(key, 0)]
            for key, events in self.events.items()
        }
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
        for (customer, model), (events, before, unpriced_events) in unchanged.items():
            summary.cost_before += before
            summary.cost_after += before
            line = summary.lines.get((customer, model, model))
            if line is None:
                summary.lines[(customer, model, model)] = RepriceLine(
                    events, 0, before, before, unpriced_events, unpriced_events
                )
                continue
            line.events += events
            line.cost_before += before
            line.cost_after += before
            line.unpriced_before += unpriced_events
            line.unpriced_after += unpriced_events
        return summary


def _sum(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int, int, int]:
    count, before, after, was_unpriced, gained = (x + y for x, y in zip(a, b, strict=True))
    return count, before, after, was_unpriced, gained


def _reprice_batch(
    conn: Connection, plans: _DayPlans, query: _BatchQuery, *, write: bool
) -> tuple[tuple[Any, int], _Tally] | None:
    cursor = driver_cursor(conn)
    try:
        cursor.execute(*query)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return None
    tally, updates = _price_rows(rows, plans)
    if write and updates:
        write_changes(conn, updates)
    last = rows[-1]
    return (last[5], last[0]), tally  # the keyset as stored, so it compares exactly


def _price_rows(rows: list[Any], plans: _DayPlans) -> tuple[_Tally, list[tuple[Any, ...]]]:
    """Price each row again: its tally, and the changed events as rows of `reprice_changes`."""
    tally = _Tally()
    tally.examined = len(rows)
    events, costs, unpriced, changes = tally.events, tally.cost, tally.unpriced, tally.changes
    prices = plans.prices
    updates = []
    for (
        event_id,
        customer,
        model_name,
        model,
        provider,
        occurred,
        prompt,
        completion,
        cached,
        cache_write,
        reasoning,
        before,
    ) in rows:
        counted = (customer, model)
        events[counted] = events.get(counted, 0) + 1
        if before is None:
            unpriced[counted] = unpriced.get(counted, 0) + 1
        else:
            costs[counted] = costs.get(counted, 0) + before
        # SQLite keeps naive UTC text, whose first ten characters are the UTC day.
        day = occurred[:10] if type(occurred) is str else occurred.astimezone(UTC).date()
        price = prices.get((model_name, provider, day))
        if price is None:
            price = plans.price(model_name, provider, day, occurred)
        model_after, provider_after, source, ref, flat, per_request, discount = price
        if flat is not None:
            # `CompiledPrice.cost_picos` of a price without tiers, written out: most events
            # take this path, and building a `TokenCounts` and a `Quote` each would double it.
            input_price, read, write, output, thinking = flat
            after = picos_to_nanos(
                (prompt - cached - cache_write) * input_price
                + cached * read
                + cache_write * write
                + (completion - reasoning) * output
                + reasoning * thinking
                + per_request
            )
            if discount is not None:
                after = discount.apply(after)
        else:
            tokens = TokenCounts(prompt, completion, cached, cache_write, reasoning)
            model_after, provider_after, cost, source, ref, _ = plans.quote(
                model_name, provider, day, occurred, tokens
            )
            if cost is None:
                tally.kept += before is not None  # no price covers it now: it keeps its cost
                continue
            after = cost
        if after == before and model_after == model and provider_after == provider:
            continue
        key = (customer, model, model_after)
        change = changes.get(key, _NO_CHANGE)
        was_unpriced = before is None
        changes[key] = (
            change[0] + 1,
            change[1] + (before or 0),
            change[2] + after,
            change[3] + was_unpriced,
            change[4] + (after if was_unpriced else 0),
        )
        updates.append((event_id, model_after, provider_after, after, source, ref))
    return tally, updates


_NO_CHANGE = (0, 0, 0, 0, 0)


class _DayPrice(NamedTuple):
    """How a (name, provider, UTC day) is priced; `flat` None: price each event by its plan
    (tiered, hourly or `Decimal` prices, no price, a day when a catalogue version starts)."""

    model: str
    provider: str | None
    source: str | None
    ref: str | None
    flat: tuple[int, int, int, int, int] | None  # per-token pico-USD, as `CompiledPrice.flat`
    per_request: int
    discount: Discount | None


_EACH_EVENT = _DayPrice("", None, None, None, None, 0, None)


def _day_price(plan: PricePlan | None) -> _DayPrice:
    """The plan's price as integers when its cost is linear in the token counts (as
    `PricePlan.quote` computes it), which covers most events."""
    if plan is None:
        return _EACH_EVENT
    compiled, discount = None, None
    if plan.custom is not None:
        compiled = plan.custom.price
    elif plan.rate is not None and plan.hourly is None:
        compiled, discount = plan.rate.compiled, plan.discount
    if compiled is None or compiled.flat is None:
        return _EACH_EVENT
    return _DayPrice(
        plan.model,
        plan.provider,
        plan.source,
        plan.ref,
        compiled.flat,
        compiled.per_request,
        discount,
    )


class _DayPlans:
    """Price stored events with one plan per (name, provider, UTC day) where one holds all day.

    Equal to `Pricer.price` per event, without its per-event look-ups: events of a day when a
    new catalogue version takes effect are priced one by one.
    """

    def __init__(self, pricer: Pricer, org_id: str) -> None:
        self.pricer = pricer
        self.org_id = org_id
        self.plans: dict[tuple[str, str | None, Any], PricePlan | None] = {}
        self.prices: dict[tuple[str, str | None, Any], _DayPrice] = {}

    def price(self, model_name: str, provider: str | None, day: Any, occurred: Any) -> _DayPrice:
        """The price of the events of `day` (its key in `prices`), found once."""
        key = (model_name, provider, day)
        plan = self.plans[key] = self.pricer.plan_for_day(
            org_id=self.org_id, model_name=model_name, provider=provider, day=_utc(occurred).date()
        )
        price = self.prices[key] = _day_price(plan)
        return price

    def quote(
        self, model_name: str, provider: str | None, day: Any, occurred: Any, tokens: TokenCounts
    ) -> Quote:
        """The quote of one event whose day's price is not linear (see `price` first)."""
        plan = self.plans[(model_name, provider, day)]
        if plan is not None:
            return plan.quote(tokens) if plan.hourly is None else plan.quote(tokens, _utc(occurred))
        return self.pricer.price(
            org_id=self.org_id,
            model_name=model_name,
            provider=provider,
            tokens=tokens,
            at=_utc(occurred),
        )


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
