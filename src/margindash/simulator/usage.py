"""The real token mix of a period, per (customer, feature, model), and each customer's revenue
and cost, from the rollups in one read.

Like the P&L, whole months come from `monthly_rollups` and the loose days at the edges of the
range from `daily_rollups`, so a month of a million events reads one row per
(customer, feature, model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, ColumnElement, Engine, Table, and_, cast, func, or_, select

from margindash.db.tables import daily_rollups, monthly_rollups
from margindash.reports.periods import split_range
from margindash.simulator.repricing import TokenMix, total

_SUMMED = (
    "events",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "unpriced_events",
    "revenue_nanos",
)


class UsageRow(NamedTuple):
    """What one customer did with one model in one feature over the period.

    A tuple of plain values: a month holds one per (customer, feature, model), and the garbage
    collector stops tracking such tuples, where it would scan as many objects on every pass.
    """

    customer_id: str
    feature: str
    model: str
    mix: TokenMix
    cost_nanos: int
    unpriced_events: int
    max_prompt_tokens: int

    def plus(self, other: UsageRow) -> UsageRow:
        """The two rows of one key (from monthly and daily rollups) as one."""
        return self._replace(
            mix=total((self.mix, other.mix)),
            cost_nanos=self.cost_nanos + other.cost_nanos,
            unpriced_events=self.unpriced_events + other.unpriced_events,
            max_prompt_tokens=max(self.max_prompt_tokens, other.max_prompt_tokens),
        )


@dataclass(slots=True)
class CustomerTotals:
    """A customer's revenue, cost and events over the period (every feature), as the P&L has."""

    revenue_nanos: int = 0
    cost_nanos: int = 0
    events: int = 0


@dataclass(slots=True)
class PeriodUsage:
    """Usage rows by (feature, model), and every customer's totals."""

    groups: dict[tuple[str, str], list[UsageRow]] = field(default_factory=dict)
    customers: dict[str, CustomerTotals] = field(default_factory=dict)


def read_usage(
    engine: Engine,
    *,
    org_id: str,
    date_from: date,
    date_to: date,
    customer_id: str | None = None,
    feature: str | None = None,
) -> PeriodUsage:
    """An org's usage over [date_from, date_to]; `feature` narrows the usage rows only (a
    customer's totals always span every feature)."""
    months, loose = split_range(date_from, date_to)
    queries = []
    if months:
        table = monthly_rollups
        # One month has one row per key already: summing it again would only cost time.
        where: list[ColumnElement[bool]] = [table.c.month.in_(months)]
        queries.append(_query(table, where, org_id, customer_id, grouped=len(months) > 1))
    if loose:
        table = daily_rollups
        where = [or_(*(table.c.day.between(a, b) for a, b in loose))]
        queries.append(_query(table, where, org_id, customer_id, grouped=True))
    groups: dict[tuple[str, str], dict[str, UsageRow]] = {}
    customers: dict[str, CustomerTotals] = {}
    with engine.connect() as conn:
        for query in queries:
            for (
                customer,
                feature_name,
                model,
                events,
                prompt,
                completion,
                cached,
                write,
                reasoning,
                cost,
                unpriced,
                revenue,
                biggest,
            ) in conn.execute(query).all():
                totals = customers.get(customer)
                if totals is None:
                    totals = customers[customer] = CustomerTotals()
                totals.revenue_nanos += revenue
                totals.cost_nanos += cost
                totals.events += events
                if not model or (feature is not None and feature_name != feature):
                    continue  # revenue booked without usage, or another feature
                row = UsageRow(
                    customer,
                    feature_name,
                    model,
                    TokenMix(events, prompt, completion, cached, write, reasoning),
                    cost,
                    unpriced,
                    biggest,
                )
                group = groups.get((feature_name, model))
                if group is None:
                    group = groups[(feature_name, model)] = {}
                earlier = group.get(customer)
                group[customer] = row if earlier is None else earlier.plus(row)
    usage = PeriodUsage()
    for key, rows in groups.items():
        kept = [row for row in rows.values() if row.mix.events]
        if kept:
            usage.groups[key] = kept
    # Rows emptied by re-pricing are not worth showing (as in the P&L).
    usage.customers = {
        customer: totals
        for customer, totals in customers.items()
        if totals.events or totals.revenue_nanos or totals.cost_nanos
    }
    return usage


def _query(
    table: Table,
    where: list[ColumnElement[bool]],
    org_id: str,
    customer_id: str | None,
    grouped: bool,
) -> Any:
    keys = (table.c.customer_id, table.c.feature, table.c.model)
    measures: list[Any]
    if grouped:
        # Cast, so PostgreSQL answers integers rather than NUMERIC sums.
        measures = [cast(func.sum(table.c[name]), BigInteger) for name in _SUMMED]
        measures.append(func.max(table.c.max_prompt_tokens))
    else:
        measures = [table.c[name] for name in (*_SUMMED, "max_prompt_tokens")]
    clauses = [table.c.org_id == org_id, *where]
    if customer_id is not None:
        clauses.append(table.c.customer_id == customer_id)
    query = select(*keys, *measures).where(and_(*clauses))
    return query.group_by(*keys) if grouped else query
