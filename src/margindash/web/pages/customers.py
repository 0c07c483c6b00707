"""The customers table and one customer's page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine

from margindash.api.schemas import line_json
from margindash.orgs.service import Org
from margindash.reports.decisions import MONITOR, REPRICE_OR_THROTTLE
from margindash.reports.periods import add_months, month_bounds
from margindash.reports.pnl import (
    CustomerPnl,
    PnlFilter,
    PnlLine,
    PnlReport,
    get_customer_pnl,
    get_pnl,
)
from margindash.web.charts import LineChart
from margindash.web.pages.budgets import budget_rows, customer_budgets
from margindash.web.pages.overview import trend_chart, trend_table
from margindash.web.pages.pnl_tables import breakdown_table, customers_table
from margindash.web.period import Period
from margindash.web.tables import DataTable

TREND_MONTHS = 6
STREAK_BADGE_MONTHS = 2


@dataclass(frozen=True, slots=True)
class CustomersView:
    """All customers of the period, and how many need attention."""

    table: DataTable
    totals: dict[str, Any]
    losing: int
    watching: int
    streaks: int

    @property
    def tables(self) -> dict[str, DataTable]:
        return {self.table.name: self.table}


def build_customers(
    engine: Engine,
    *,
    org: Org,
    period: Period,
    watch_pct: float,
    search: str | None,
    sort: str | None,
    direction: str | None,
) -> CustomersView:
    """The customers' P&L, searched and sorted (worst margin first by default)."""
    report = get_pnl(
        engine,
        org=org,
        date_from=period.date_from,
        date_to=period.date_to,
        group_by="customer",
        watch_pct=watch_pct,
    )
    table = customers_table(report).filtered(search).sorted_by(sort, direction)
    rows = table.rows
    return CustomersView(
        table=table,
        totals=line_json(report.totals),
        losing=sum(1 for r in rows if r["action"] == REPRICE_OR_THROTTLE),
        watching=sum(1 for r in rows if r["action"] == MONITOR),
        streaks=sum(1 for r in rows if int(str(r["negative_months"])) >= STREAK_BADGE_MONTHS),
    )


@dataclass(frozen=True, slots=True)
class CustomerView:
    """One customer: totals for the period, a monthly trend, and what it uses."""

    customer_id: str
    totals: dict[str, Any]
    chart: LineChart | None
    months: DataTable
    features: DataTable
    models: DataTable
    budgets: list[dict[str, Any]]

    @property
    def tables(self) -> dict[str, DataTable]:
        return {t.name: t for t in (self.months, self.features, self.models)}


def build_customer(
    engine: Engine, *, org: Org, customer_id: str, period: Period, watch_pct: float
) -> CustomerView | None:
    """A customer's page; None when the customer has no data at all."""
    found = get_customer_pnl(
        engine,
        org=org,
        customer_id=customer_id,
        date_from=period.date_from,
        date_to=period.date_to,
        watch_pct=watch_pct,
    )
    if found is None:
        return None
    trend_period = _trend_period(period.date_to)
    monthly = get_pnl(
        engine,
        org=org,
        date_from=trend_period.date_from,
        date_to=trend_period.date_to,
        group_by="month",
        filters=PnlFilter(customer_id=customer_id),
        watch_pct=watch_pct,
    )
    months = _from_first_activity(trend_table(monthly, period=trend_period, granularity="month"))
    return CustomerView(
        customer_id=customer_id,
        totals=_totals(found.totals),
        chart=trend_chart(months, currency=org.currency),
        months=months,
        features=_breakdown(found, org, period, "feature", found.features),
        models=_breakdown(found, org, period, "model", found.models),
        budgets=customer_budgets(budget_rows(engine, org=org), customer_id),
    )


def _from_first_activity(trend: DataTable) -> DataTable:
    """The trend without the months before the customer's first usage or revenue."""
    rows = trend.rows
    first = next((i for i, r in enumerate(rows) if r["events"] or r["revenue"] != "0.00"), 0)
    return DataTable(name="months", title="Monthly trend", columns=trend.columns, rows=rows[first:])


def _totals(line: PnlLine) -> dict[str, Any]:
    body = line_json(line)
    body.setdefault("action", line.action)
    body.setdefault("negative_months", line.negative_months or 0)
    return body


def _trend_period(last_day: date) -> Period:
    first = add_months(last_day, -(TREND_MONTHS - 1))
    return Period("custom", first, month_bounds(last_day.year, last_day.month)[1])


def _breakdown(
    found: CustomerPnl, org: Org, period: Period, group_by: str, lines: list[PnlLine]
) -> DataTable:
    report = PnlReport(org, period.date_from, period.date_to, group_by, found.totals, lines)
    label = group_by.capitalize()
    return breakdown_table(report, name=f"{group_by}s", title=f"{label}s", key_label=label)
