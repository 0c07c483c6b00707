"""P&L reports as dashboard tables, with the API's own JSON values in every cell."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from urllib.parse import quote

from margindash.api.schemas import pnl_json
from margindash.reports.pnl import PnlReport
from margindash.web.tables import Column, DataTable

CUSTOMER_COLUMNS = (
    Column("key", "Customer"),
    Column("revenue", "Revenue", "money"),
    Column("cost", "Cost", "money"),
    Column("margin", "Margin", "money"),
    Column("margin_pct", "Margin %", "pct"),
    Column("events", "Events", "count"),
    Column("unpriced_events", "Unpriced", "count", shown=False),
    Column("action", "Action", "action"),
    Column("negative_months", "Negative months", "count", shown=False),
)


def breakdown_columns(key_label: str, *, with_revenue: bool) -> tuple[Column, ...]:
    """Columns of a P&L by feature or model; revenue columns are hidden (still exported) when
    no revenue is attached to events, as margin per feature is then meaningless."""
    return (
        Column("key", key_label),
        Column("revenue", "Revenue", "money", shown=with_revenue),
        Column("cost", "Cost", "money"),
        Column("margin", "Margin", "money", shown=with_revenue),
        Column("margin_pct", "Margin %", "pct", shown=with_revenue),
        Column("events", "Events", "count"),
        Column("prompt_tokens", "Input tokens", "count"),
        Column("completion_tokens", "Output tokens", "count"),
        Column("unpriced_events", "Unpriced events", "count"),
    )


def customer_href(customer_id: str) -> str:
    return "/customers/" + quote(customer_id, safe="")


def pnl_rows(
    report: PnlReport, *, link: Callable[[str], str] | None = None
) -> list[dict[str, object]]:
    """The report's rows as `GET /v1/pnl` writes them, plus page-only keys (`_href`, …)."""
    body = pnl_json(report)
    total_cost = Decimal(body["totals"]["cost"])
    rows = body["rows"]
    for row in rows:
        row["_negative"] = Decimal(row["margin"]) < 0
        row["_share"] = _share(Decimal(row["cost"]), total_cost)
        if link is not None:
            row["_href"] = link(row["key"])
    return list(rows)


def _share(part: Decimal, whole: Decimal) -> float:
    """A bar's width in percent of the largest possible bar (display only)."""
    if whole <= 0 or part <= 0:
        return 0.0
    return round(float(part * 100 / whole), 1)


def customers_table(report: PnlReport, *, name: str = "customers") -> DataTable:
    return DataTable(
        name=name,
        title="Customers",
        columns=CUSTOMER_COLUMNS,
        rows=pnl_rows(report, link=customer_href),
    )


def breakdown_table(report: PnlReport, *, name: str, title: str, key_label: str) -> DataTable:
    rows = pnl_rows(report)
    with_revenue = any(Decimal(str(row["revenue"])) != 0 for row in rows)
    if not with_revenue:  # a margin without revenue is only the cost again: nothing to flag
        for row in rows:
            row["_negative"] = False
    return DataTable(
        name=name,
        title=title,
        columns=breakdown_columns(key_label, with_revenue=with_revenue),
        rows=rows,
    )
