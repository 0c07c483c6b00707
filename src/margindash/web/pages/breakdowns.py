"""The P&L cut by feature or by model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from margindash.api.schemas import line_json
from margindash.money import format_money
from margindash.orgs.service import Org
from margindash.pricing.service import Pricer
from margindash.reports.pnl import booked_model, get_pnl
from margindash.web.pages.pnl_tables import breakdown_table
from margindash.web.period import Period
from margindash.web.tables import DataTable

DIMENSIONS = {"feature": ("Features", "Feature"), "model": ("Models", "Model")}


@dataclass(frozen=True, slots=True)
class BreakdownView:
    """A P&L by one dimension, and the revenue it cannot attribute."""

    dimension: str
    title: str
    table: DataTable
    totals: dict[str, Any]
    unallocated_revenue: str

    @property
    def tables(self) -> dict[str, DataTable]:
        return {self.table.name: self.table}


def build_breakdown(
    engine: Engine,
    *,
    org: Org,
    period: Period,
    dimension: str,
    search: str | None,
    sort: str | None,
    direction: str | None,
    pricer: Pricer,
) -> BreakdownView:
    """The period's P&L by `feature` or `model`, most expensive first.

    A search of the models also finds the model its text is booked as, so a provider's
    spelling (`gpt-4o-mini-2024-07-18`, `openai/gpt-4o-mini`) finds that model's row.
    """
    title, key_label = DIMENSIONS[dimension]
    report = get_pnl(
        engine,
        org=org,
        date_from=period.date_from,
        date_to=period.date_to,
        group_by=dimension,
    )
    table = breakdown_table(report, name=f"{dimension}s", title=title, key_label=key_label)
    booked = None
    if dimension == "model" and search and search.strip():
        booked = booked_model(pricer, org_id=org.id, model_name=search, date_to=period.date_to)
    return BreakdownView(
        dimension=dimension,
        title=title,
        table=table.filtered(search, or_key=booked).sorted_by(sort, direction),
        totals=line_json(report.totals),
        unallocated_revenue=format_money(report.unallocated_revenue_nanos),
    )
