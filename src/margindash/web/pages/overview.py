"""The overview: the period's P&L in four numbers, its trend, and what drives cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from margindash.api.schemas import line_json, pnl_json
from margindash.orgs.service import Org
from margindash.reports.decisions import REPRICE_OR_THROTTLE
from margindash.reports.health import data_health
from margindash.reports.periods import add_months
from margindash.reports.pnl import PnlReport, get_pnl
from margindash.web.charts import Bucket, LineChart, line_chart
from margindash.web.pages.budgets import budget_rows
from margindash.web.pages.pnl_tables import breakdown_table, customers_table
from margindash.web.period import Period
from margindash.web.tables import Column, DataTable

TOP = 5
_DAILY_UP_TO_DAYS = 92
TREND_COLUMNS = (
    Column("key", "Period"),
    Column("revenue", "Revenue", "money"),
    Column("cost", "Cost", "money"),
    Column("margin", "Margin", "money"),
    Column("margin_pct", "Margin %", "pct"),
    Column("events", "Events", "count"),
)


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the overview page shows."""

    totals: dict[str, Any]
    has_data: bool
    chart: LineChart | None
    trend: DataTable
    customers: DataTable
    features: DataTable
    models: DataTable
    losing_customers: int
    unpriced_models: list[tuple[str, int]]
    budgets: list[dict[str, Any]]

    @property
    def tables(self) -> dict[str, DataTable]:
        return {t.name: t for t in (self.trend, self.customers, self.features, self.models)}

    @property
    def to_act_on(self) -> list[dict[str, Any]]:
        """The customers losing money, worst first (at most TOP)."""
        return [row for row in self.customers.rows if row["_negative"]][:TOP]


def build_overview(engine: Engine, *, org: Org, period: Period, watch_pct: float) -> Overview:
    """The overview of an org over a period."""

    def report(group_by: str) -> PnlReport:
        return get_pnl(
            engine,
            org=org,
            date_from=period.date_from,
            date_to=period.date_to,
            group_by=group_by,
            watch_pct=watch_pct,
        )

    by_customer = report("customer")
    granularity = "day" if period.days <= _DAILY_UP_TO_DAYS else "month"
    trend = trend_table(report(granularity), period=period, granularity=granularity)
    health = data_health(engine, org=org)
    customers = customers_table(by_customer)
    return Overview(
        totals=line_json(by_customer.totals),
        has_data=health.events > 0,
        chart=trend_chart(trend, currency=org.currency),
        trend=trend,
        customers=customers,
        features=breakdown_table(
            report("feature"), name="features", title="Features by cost", key_label="Feature"
        ),
        models=breakdown_table(
            report("model"), name="models", title="Models by cost", key_label="Model"
        ),
        losing_customers=sum(1 for r in customers.rows if r["action"] == REPRICE_OR_THROTTLE),
        unpriced_models=health.unpriced_models if by_customer.totals.unpriced_events else [],
        budgets=sorted(budget_rows(engine, org=org), key=lambda b: -b["used_pct"]),
    )


def trend_table(report: PnlReport, *, period: Period, granularity: str) -> DataTable:
    """The report by day or month with every bucket of the period present (empty ones zero)."""
    body = pnl_json(report)
    found = {row["key"]: row for row in body["rows"]}
    zero = {"revenue": "0.00", "cost": "0.00", "margin": "0.00", "margin_pct": None, "events": 0}
    rows = [{**zero, **found.get(key, {}), "key": key} for key in buckets(period, granularity)]
    return DataTable(name="trend", title="Revenue and cost", columns=TREND_COLUMNS, rows=rows)


def buckets(period: Period, granularity: str) -> list[str]:
    """The keys `/v1/pnl` uses for each day (`2026-10-01`) or month (`2026-10`) of a period."""
    if granularity == "day":
        return [(period.date_from + timedelta(days=i)).isoformat() for i in range(period.days)]
    keys, cursor = [], period.date_from.replace(day=1)
    while cursor <= period.date_to:
        keys.append(f"{cursor:%Y-%m}")
        cursor = add_months(cursor, 1)
    return keys


def trend_chart(trend: DataTable, *, currency: str) -> LineChart | None:
    """Revenue and cost lines over the trend's buckets."""
    points = []
    for row in trend.rows:
        label, title = _bucket_labels(str(row["key"]))
        values = (Decimal(row["revenue"]), Decimal(row["cost"]))
        points.append(Bucket(label=label, title=title, values=values))
    return line_chart(points, (("Revenue", "revenue"), ("Cost", "cost")), currency=currency)


def _bucket_labels(key: str) -> tuple[str, str]:
    if len(key) == 7:  # a month
        first = date.fromisoformat(key + "-01")
        return f"{first:%b %Y}", f"{first:%B %Y}"
    day = date.fromisoformat(key)
    return f"{day.day} {day:%b}", f"{day.day} {day:%b %Y}"
