"""What a scope has spent over a range of org-local days, read from the rollups (never events)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, Engine, func, select

from margindash.budgets.spec import Scope
from margindash.db.tables import daily_rollups, monthly_rollups
from margindash.orgs.service import Org
from margindash.reports.periods import split_range
from margindash.reports.pnl import get_pnl

TOP_DRIVERS = 5


@dataclass(frozen=True, slots=True)
class Drivers:
    """The customers and models that spent most of a budget, as (key, nano-USD), largest first."""

    customers: list[tuple[str, int]]
    models: list[tuple[str, int]]


def spent_nanos(
    conn: Connection, *, org_id: str, scope: Scope, first_day: date, last_day: date
) -> int:
    """Cost in nano-USD of the scope over [first_day, last_day]: whole months read one row each."""
    months, loose = split_range(first_day, last_day)
    total = 0
    if months:
        m = monthly_rollups
        total += conn.execute(
            select(func.coalesce(func.sum(m.c.cost_nanos), 0)).where(
                m.c.org_id == org_id, m.c.month.in_(months), *scope.filters.clauses(m)
            )
        ).scalar_one()
    for start, end in loose:
        d = daily_rollups
        total += conn.execute(
            select(func.coalesce(func.sum(d.c.cost_nanos), 0)).where(
                d.c.org_id == org_id, d.c.day.between(start, end), *scope.filters.clauses(d)
            )
        ).scalar_one()
    return int(total)


def top_drivers(
    engine: Engine, *, org: Org, scope: Scope, first_day: date, last_day: date
) -> Drivers:
    """The customers and models with the highest cost in the scope over the range."""

    def largest(group_by: str) -> list[tuple[str, int]]:
        report = get_pnl(
            engine,
            org=org,
            date_from=first_day,
            date_to=last_day,
            group_by=group_by,
            filters=scope.filters,
        )
        lines = sorted(report.rows, key=lambda line: (-line.cost_nanos, line.key))
        return [(line.key, line.cost_nanos) for line in lines[:TOP_DRIVERS] if line.cost_nanos]

    return Drivers(customers=largest("customer"), models=largest("model"))
