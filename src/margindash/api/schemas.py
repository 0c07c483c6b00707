"""Response shapes of the API (for the OpenAPI schema) and the functions that build them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field

from margindash.ledger.ingest import EventResult, IngestReport
from margindash.money import format_cost, format_money
from margindash.reports.pnl import PnlLine, PnlReport
from margindash.runtime import gc_paused

# A database id in a path: anything past a signed 64-bit integer cannot exist (404 would need a
# query the driver refuses), so it is a 422 like any other invalid value.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[Any] = []


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ItemResult(BaseModel):
    request_id: str | None
    status: str
    cost_usd: str | None = None
    model: str | None = None
    provider: str | None = None
    priced: bool = False
    estimated: bool = False
    warnings: list[str] = []
    error: ErrorDetail | None = None


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


class RejectedResponse(IngestResponse):
    """A single event that was rejected (422): the usual counters, and its error on top."""

    error: ErrorDetail


class RevenueResult(BaseModel):
    revenue_id: str | None
    status: str
    amount_usd: str | None = None
    warnings: list[str] = []
    error: ErrorDetail | None = None


class RevenueResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[RevenueResult]


class RejectedRevenueResponse(RevenueResponse):
    """A single revenue entry that was rejected (422), with its error on top."""

    error: ErrorDetail


class PnlTotals(BaseModel):
    revenue: str
    cost: str
    margin: str
    margin_pct: float | None
    events: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    unpriced_events: int
    estimated_events: int


class PnlRow(PnlTotals):
    key: str
    action: str | None = None
    negative_months: int | None = None


class PnlResponse(BaseModel):
    from_: str = Field(alias="from")
    to: str
    currency: str
    group_by: str
    model: str | None = Field(
        None, description="the `model` filter as the org's events are booked (only with one)"
    )
    totals: PnlTotals
    rows: list[PnlRow]
    unallocated_revenue: str | None = None

    model_config = {"populate_by_name": True}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}


def result_json(result: EventResult, *, id_field: str = "request_id") -> dict[str, Any]:
    error = None
    if result.errors:
        fields = ", ".join(e.field for e in result.errors)
        error = {
            "code": "invalid_event",
            "message": f"invalid value for {fields}: "
            + "; ".join(e.message for e in result.errors),
            "details": [{"field": e.field, "message": e.message} for e in result.errors],
        }
    body: dict[str, Any] = {
        id_field: result.request_id,
        "status": result.status,
        "cost_usd": format_cost(result.cost_nanos),
        "model": result.model,
        "provider": result.provider,
        "priced": result.priced,
        "estimated": result.estimated,
        "warnings": result.warnings,
        "error": error,
    }
    return body


def report_json(report: IngestReport, *, id_field: str = "request_id") -> dict[str, Any]:
    return {
        "accepted": report.count("accepted"),
        "duplicates": report.count("duplicate"),
        "rejected": report.count("rejected"),
        "results": [result_json(r, id_field=id_field) for r in report.results],
    }


def line_json(line: PnlLine, *, key: bool = False) -> dict[str, Any]:
    """A P&L line for JSON; with `key`, the line's key comes first (report rows)."""
    revenue, cost = line.revenue_nanos, line.cost_nanos
    body: dict[str, Any] = {"key": line.key} if key else {}
    body["revenue"] = format_money(revenue)
    body["cost"] = format_money(cost)
    body["margin"] = format_money(revenue - cost)
    body["margin_pct"] = line.margin_pct
    body["events"] = line.events
    body["prompt_tokens"] = line.prompt_tokens
    body["completion_tokens"] = line.completion_tokens
    body["cached_tokens"] = line.cached_tokens
    body["reasoning_tokens"] = line.reasoning_tokens
    body["unpriced_events"] = line.unpriced_events
    body["estimated_events"] = line.estimated_events
    if line.action is not None:
        body["action"] = line.action
        body["negative_months"] = line.negative_months
    return body


@gc_paused()  # as `get_pnl`: a dict and three strings per row, none of them cyclic garbage
def pnl_json(report: PnlReport, *, model: str | None = None) -> dict[str, Any]:
    """A P&L report for JSON; `model` is the model filter as resolved, echoed when given."""
    body: dict[str, Any] = {
        "from": report.date_from.isoformat(),
        "to": report.date_to.isoformat(),
        "currency": report.org.currency,
        "group_by": report.group_by,
    }
    if model is not None:
        body["model"] = model
    body["totals"] = line_json(report.totals)
    body["rows"] = [line_json(line, key=True) for line in report.rows]
    if report.group_by in ("feature", "model"):
        body["unallocated_revenue"] = format_money(report.unallocated_revenue_nanos)
    return body
