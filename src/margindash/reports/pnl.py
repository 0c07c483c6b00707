"""P&L: revenue, cost and margin by customer, feature, model, day or month, from the rollups.

Whole months are read from `monthly_rollups` and the loose days at the edges of a range from
`daily_rollups`, so a month over a million events reads one row per (customer, feature, model).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ColumnElement, Engine, Table, and_, cast, func, or_, select

from margindash.db.tables import customer_months, daily_rollups, monthly_rollups
from margindash.money import margin_pct
from margindash.orgs.service import Org
from margindash.reports.decisions import customer_action, negative_streak
from margindash.reports.periods import add_months, month_bounds, split_range
from margindash.runtime import gc_paused

if TYPE_CHECKING:
    from margindash.pricing.service import Pricer

GROUPS = ("customer", "feature", "model", "day", "month")
# The summed columns, in `PnlLine`'s field order: a query row builds a line in one call.
_SUMMED = (
    "revenue_nanos",
    "cost_nanos",
    "events",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "unpriced_events",
    "estimated_events",
)
_STREAK_LOOKBACK_MONTHS = 24


@dataclass(slots=True)
class PnlLine:
    """Revenue, cost and usage of one group (or of the whole period)."""

    key: str
    revenue_nanos: int = 0
    cost_nanos: int = 0
    events: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    unpriced_events: int = 0
    estimated_events: int = 0
    action: str | None = None
    negative_months: int | None = None
    # Set once the line's sums are complete (`get_pnl` sets it for every line it returns):
    # reading it is cheaper than working it out again for the action and for the answer.
    margin_pct: float | None = None

    @property
    def margin_nanos(self) -> int:
        return self.revenue_nanos - self.cost_nanos

    def add(self, values: Sequence[Any]) -> None:
        """Add a row of sums in `_SUMMED` order (a query row after its key)."""
        rev, cost, events, prompt, completion, cached, cache_write, reasoning, unpriced, est = (
            values
        )
        self.events += events or 0
        self.prompt_tokens += prompt or 0
        self.completion_tokens += completion or 0
        self.cached_tokens += cached or 0
        self.cache_write_tokens += cache_write or 0
        self.reasoning_tokens += reasoning or 0
        self.cost_nanos += cost or 0
        self.unpriced_events += unpriced or 0
        self.estimated_events += est or 0
        self.revenue_nanos += rev or 0


@dataclass(slots=True)
class PnlReport:
    """A P&L for a date range, grouped one way."""

    org: Org
    date_from: date
    date_to: date
    group_by: str
    totals: PnlLine
    rows: list[PnlLine] = field(default_factory=list)
    # Revenue not attached to any usage event, when grouping by feature or model.
    unallocated_revenue_nanos: int = 0


@dataclass(frozen=True, slots=True)
class PnlFilter:
    """Optional narrowing of a report to one customer, feature or model."""

    customer_id: str | None = None
    feature: str | None = None
    model: str | None = None

    def clauses(self, table: Table) -> list[ColumnElement[bool]]:
        found = []
        if self.customer_id is not None:
            found.append(table.c.customer_id == self.customer_id)
        if self.feature is not None:
            found.append(table.c.feature == self.feature)
        if self.model is not None:
            found.append(table.c.model == self.model)
        return found


def booked_model(pricer: Pricer, *, org_id: str, model_name: str, date_to: date) -> str:
    """The model a report up to `date_to` filters on for `model_name`: the name the org's
    events sent as `model_name` were booked under (`gpt-4o-mini-2024-07-18`,
    `openai/gpt-4o-mini` and ` GPT-4o-mini` are all `gpt-4o-mini`).

    Resolved as on the report's last day (now, if that day has not ended): an alias repointed
    since (a redeployed Azure deployment) named another model then, and the period's events
    are booked under that one. One name serves the whole range, so in a range an alias was
    repointed within, its events from before the change are booked under the model it named
    then and are not counted.
    """
    at = min(datetime.now(UTC), datetime.combine(date_to, time.max, UTC))
    return pricer.booked_model(org_id=org_id, model_name=model_name, at=at)


@gc_paused()  # 10,000 customers build some 100,000 objects, none of them cyclic garbage
def get_pnl(
    engine: Engine,
    *,
    org: Org,
    date_from: date,
    date_to: date,
    group_by: str,
    filters: PnlFilter = PnlFilter(),
    watch_pct: float = 20.0,
) -> PnlReport:
    """The P&L of an org over [date_from, date_to], grouped by `group_by`."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    if date_to < date_from:
        raise ValueError("`to` is before `from`")
    batches: list[Sequence[Any]] = []
    with engine.connect() as conn:
        for query in _queries(org.id, date_from, date_to, group_by, filters):
            batches.append(_keyed(conn.execute(query).all(), group_by))
        lines = _lines(batches, group_by)
        streaks = (
            _customer_streaks(conn, org.id, date_from, date_to, filters, lines)
            if group_by == "customer"
            else {}
        )
    totals = PnlLine("total")
    for rows in batches:
        if rows:
            columns = zip(*rows, strict=True)
            next(columns)  # the keys
            totals.add([sum(column) for column in columns])
    report = PnlReport(org, date_from, date_to, group_by, totals)
    if group_by in ("feature", "model"):
        unallocated = lines.pop("", None)
        report.unallocated_revenue_nanos = unallocated.revenue_nanos if unallocated else 0
    _finish([totals], None, watch_pct)
    _finish(lines.values(), streaks if group_by == "customer" else None, watch_pct)
    report.rows = _ordered(lines.values(), group_by)
    return report


def _keyed(rows: Sequence[Any], group_by: str) -> Sequence[Any]:
    """Query rows with their key as a string: names already are; dates need turning into keys."""
    if group_by in ("day", "month"):
        return [(_key(row[0], group_by), *row[1:]) for row in rows]
    return rows


def _lines(batches: list[Sequence[Any]], group_by: str) -> dict[str, PnlLine]:
    """One line per key from query rows (a key, then sums in `_SUMMED` order).

    Lines that come to nothing are left out: re-pricing can move a row's events to another
    model and leave it empty.
    """
    # One query's keys are unique (grouped, or a primary key), except months keyed from
    # daily rows: a report by customer builds its 10,000 lines in one pass. Columns 1-3 of a
    # row are revenue, cost and events: a row with none of them is empty.
    if len(batches) == 1 and group_by != "month":
        return {row[0]: PnlLine(*row) for row in batches[0] if row[3] or row[1] or row[2]}
    lines: dict[str, PnlLine] = {}
    for rows in batches:
        for row in rows:
            line = lines.get(row[0])
            if line is None:
                lines[row[0]] = PnlLine(*row)
            else:
                line.add(row[1:])
    return {k: v for k, v in lines.items() if v.events or v.revenue_nanos or v.cost_nanos}


def _finish(lines: Iterable[PnlLine], streaks: dict[str, int] | None, watch_pct: float) -> None:
    """Each line's margin %; with `streaks` (lines of customers), also its action, from its
    margin, and its run of negative months."""
    for line in lines:
        revenue, cost = line.revenue_nanos, line.cost_nanos
        pct = line.margin_pct = margin_pct(revenue, cost)
        if streaks is not None:
            line.action = customer_action(
                margin_nanos=revenue - cost, margin_pct=pct, watch_pct=watch_pct
            )
            line.negative_months = streaks.get(line.key, 0)


def _queries(
    org_id: str, date_from: date, date_to: date, group_by: str, filters: PnlFilter
) -> Iterable[Any]:
    months: list[date]
    if group_by == "day":
        months, loose = [], [(date_from, date_to)]
    else:
        months, loose = split_range(date_from, date_to)
    if months:
        whole = _month_table(group_by, filters)
        where = [whole.c.org_id == org_id, whole.c.month.in_(months)]
        if whole is customer_months and group_by == "customer" and len(months) == 1:
            # One row per customer already (the primary key): nothing to add up.
            yield select(whole.c.customer_id.label("key"), *(whole.c[n] for n in _SUMMED)).where(
                *where, *filters.clauses(whole)
            )
        else:
            yield _grouped(whole, group_by, where, filters)
    if loose:
        days = or_(*(daily_rollups.c.day.between(a, b) for a, b in loose))
        yield _grouped(daily_rollups, group_by, [daily_rollups.c.org_id == org_id, days], filters)


def _month_table(group_by: str, filters: PnlFilter) -> Table:
    """Customer totals per month when neither feature nor model matters, else the detail."""
    if group_by in ("customer", "month") and filters.feature is None and filters.model is None:
        return customer_months
    return monthly_rollups


def _grouped(
    table: Table, group_by: str, where: list[ColumnElement[bool]], filters: PnlFilter
) -> Any:
    period = table.c.day if table is daily_rollups else table.c.month
    columns = {"customer": "customer_id", "feature": "feature", "model": "model"}
    key = period if group_by in ("day", "month") else table.c[columns[group_by]]
    # Cast: PostgreSQL sums bigints as numeric (Decimal in Python); integers stay integers.
    sums = [cast(func.sum(table.c[name]), BigInteger).label(name) for name in _SUMMED]
    return (
        select(key.label("key"), *sums).where(and_(*where, *filters.clauses(table))).group_by(key)
    )


def _key(value: Any, group_by: str) -> str:
    if isinstance(value, str) and group_by != "month":
        return value
    if group_by == "month":
        return value.strftime("%Y-%m") if isinstance(value, date) else str(value)[:7]
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _ordered(lines: Iterable[PnlLine], group_by: str) -> list[PnlLine]:
    # By key, then (a stable sort) by amount: cheaper than one sort on (amount, key) tuples.
    ordered = sorted(lines, key=attrgetter("key"))
    if group_by == "customer":
        # Worst margin first: the customers to act on lead the table.
        ordered.sort(key=lambda line: line.revenue_nanos - line.cost_nanos)
    elif group_by in ("feature", "model"):
        ordered.sort(key=lambda line: -line.cost_nanos)
    return ordered


def _customer_streaks(
    conn: Any,
    org_id: str,
    date_from: date,
    date_to: date,
    filters: PnlFilter,
    lines: dict[str, PnlLine],
) -> dict[str, int]:
    """Negative-month streaks for a report by customer over [date_from, date_to] with `lines`."""
    if date_from != date_to.replace(day=1):
        return negative_month_streaks(conn, org_id, date_to, filters)
    # The report is `date_to`'s month up to `date_to`: its lines say who lost money in it.
    losing = [key for key, line in lines.items() if line.revenue_nanos < line.cost_nanos]
    return negative_month_streaks(conn, org_id, date_to, filters, losing_in_last_month=losing)


def negative_month_streaks(
    conn: Any,
    org_id: str,
    date_to: date,
    filters: PnlFilter,
    *,
    losing_in_last_month: Iterable[str] | None = None,
) -> dict[str, int]:
    """Consecutive negative-margin calendar months per customer, up to `date_to`'s month.

    `date_to`'s month counts up to `date_to`: what happens after it is not in the report.

    Args:
        losing_in_last_month: the customers with a negative margin in `date_to`'s month (up to
            `date_to`), when the caller knows them: that month is then not read again, and the
            months before only if someone's streak can go on into them.
    """
    last = date_to.replace(day=1)
    newest = last
    negative: dict[str, set[tuple[int, int]]] = {}
    if losing_in_last_month is None and date_to != month_bounds(last.year, last.month)[1]:
        losing_in_last_month = _losing_between(conn, org_id, last, date_to, filters)
    if losing_in_last_month is not None:
        negative = {customer: {(last.year, last.month)} for customer in losing_in_last_month}
        if not negative:
            return {}
        newest = add_months(last, -1)
    t = _month_table("customer", filters)
    where = [
        t.c.org_id == org_id,
        t.c.month.between(add_months(last, -_STREAK_LOOKBACK_MONTHS), newest),
        *filters.clauses(t),
    ]
    if t is customer_months:  # one row per customer and month: no need to add up
        query = select(t.c.customer_id, t.c.month).where(*where, t.c.revenue_nanos < t.c.cost_nanos)
    else:
        margin = func.sum(t.c.revenue_nanos) - func.sum(t.c.cost_nanos)
        query = (
            select(t.c.customer_id, t.c.month)
            .where(*where)
            .group_by(t.c.customer_id, t.c.month)
            .having(margin < 0)
        )
    for row in conn.execute(query):
        month = row.month if isinstance(row.month, date) else date.fromisoformat(str(row.month))
        negative.setdefault(row.customer_id, set()).add((month.year, month.month))
    return {
        customer: negative_streak(months, year=last.year, month=last.month)
        for customer, months in negative.items()
    }


def _losing_between(
    conn: Any, org_id: str, first: date, last: date, filters: PnlFilter
) -> list[str]:
    """Customers whose costs exceed their revenue over the days [first, last]."""
    t = daily_rollups
    margin = func.sum(t.c.revenue_nanos) - func.sum(t.c.cost_nanos)
    query = (
        select(t.c.customer_id)
        .where(t.c.org_id == org_id, t.c.day.between(first, last), *filters.clauses(t))
        .group_by(t.c.customer_id)
        .having(margin < 0)
    )
    return list(conn.execute(query).scalars())


@dataclass(slots=True)
class CustomerPnl:
    """One customer's P&L with its breakdowns."""

    totals: PnlLine
    months: list[PnlLine]
    features: list[PnlLine]
    models: list[PnlLine]


def get_customer_pnl(
    engine: Engine,
    *,
    org: Org,
    customer_id: str,
    date_from: date,
    date_to: date,
    watch_pct: float = 20.0,
) -> CustomerPnl | None:
    """A customer's P&L over the range; None when the customer has no data at all."""
    only = PnlFilter(customer_id=customer_id)
    with engine.connect() as conn:
        known = conn.execute(
            select(monthly_rollups.c.month)
            .where(monthly_rollups.c.org_id == org.id, monthly_rollups.c.customer_id == customer_id)
            .limit(1)
        ).first()
    if known is None:
        return None

    def report(group_by: str) -> PnlReport:
        return get_pnl(
            engine,
            org=org,
            date_from=date_from,
            date_to=date_to,
            group_by=group_by,
            filters=only,
            watch_pct=watch_pct,
        )

    by_customer = report("customer")
    totals = by_customer.rows[0] if by_customer.rows else PnlLine(customer_id)
    if not by_customer.rows:
        totals.action, totals.negative_months = "healthy", 0
    return CustomerPnl(
        totals=totals,
        months=report("month").rows,
        features=report("feature").rows,
        models=report("model").rows,
    )
