"""`/v1/pnl` and `/v1/customers/{id}/pnl`: revenue, cost and margin from the rollups."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from margindash.api.deps import ReadCaller, ServicesDep
from margindash.api.errors import ApiError, invalid_field, json_response
from margindash.api.schemas import ERROR_RESPONSES, PnlResponse, line_json, pnl_json
from margindash.orgs.service import Org
from margindash.reports.periods import EARLIEST_DAY, LATEST_DAY, parse_month, this_month
from margindash.reports.pnl import PnlFilter, booked_model, get_customer_pnl, get_pnl
from margindash.runtime import gc_paused

router = APIRouter(prefix="/v1", tags=["pnl"])

GroupBy = Literal["customer", "feature", "model", "day", "month"]
_MAX_RANGE_DAYS = 3660


def resolve_period(
    org: Org, date_from: date | None, date_to: date | None, month: str | None
) -> tuple[date, date]:
    """The report's date range from `from`/`to` or `month` (default: this month)."""
    if month is not None:
        if date_from or date_to:
            raise invalid_field("month", "send month or from/to, not both")
        try:
            first, last = parse_month(month)
        except ValueError as exc:
            raise invalid_field("month", str(exc)) from None
        if first < EARLIEST_DAY or last > LATEST_DAY:
            raise invalid_field("month", f"outside {EARLIEST_DAY:%Y-%m} to {LATEST_DAY:%Y-%m}")
        return first, last
    if date_from is None and date_to is None:
        return this_month(org.zone)
    if date_from is None or date_to is None:
        raise invalid_field("from" if date_from is None else "to", "send both from and to")
    if date_to < date_from:
        raise invalid_field("to", "is before from")
    for field, day in (("from", date_from), ("to", date_to)):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise invalid_field(field, f"outside {EARLIEST_DAY} to {LATEST_DAY}")
    if (date_to - date_from).days > _MAX_RANGE_DAYS:
        raise invalid_field("to", f"range longer than {_MAX_RANGE_DAYS} days")
    return date_from, date_to


Month = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")]
From = Annotated[date | None, Query(alias="from")]
To = Annotated[date | None, Query(alias="to")]


@router.get("/pnl", response_model=PnlResponse, responses=ERROR_RESPONSES, summary="P&L")
def pnl(
    caller: ReadCaller,
    services: ServicesDep,
    date_from: From = None,
    date_to: To = None,
    month: Month = None,
    group_by: GroupBy = "customer",
    customer_id: Annotated[str | None, Query(max_length=255)] = None,
    feature: Annotated[str | None, Query(max_length=255)] = None,
    model: Annotated[str | None, Query(max_length=255)] = None,
) -> Response:
    start, end = resolve_period(caller.org, date_from, date_to, month)
    # Rollups name a model as events are booked: filter on that name, and say which it is.
    booked = (
        None
        if model is None
        else booked_model(services.pricer, org_id=caller.org.id, model_name=model, date_to=end)
    )
    with gc_paused():
        report = get_pnl(
            services.engine,
            org=caller.org,
            date_from=start,
            date_to=end,
            group_by=group_by,
            filters=PnlFilter(customer_id, feature, booked),
            watch_pct=services.settings.watch_margin_pct,
        )
        return json_response(pnl_json(report, model=booked))


@router.get(
    "/customers/{customer_id:path}/pnl", responses=ERROR_RESPONSES, summary="One customer's P&L"
)
def customer_pnl(
    customer_id: str,
    caller: ReadCaller,
    services: ServicesDep,
    date_from: From = None,
    date_to: To = None,
    month: Month = None,
) -> Response:
    start, end = resolve_period(caller.org, date_from, date_to, month)
    found = get_customer_pnl(
        services.engine,
        org=caller.org,
        customer_id=customer_id,
        date_from=start,
        date_to=end,
        watch_pct=services.settings.watch_margin_pct,
    )
    if found is None:
        raise ApiError(404, "not_found", f"no data for customer {customer_id!r}")
    return json_response(
        {
            "customer_id": customer_id,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "currency": caller.org.currency,
            "totals": line_json(found.totals),
            **{
                name: [line_json(line, key=True) for line in lines]
                for name, lines in (
                    ("months", found.months),
                    ("features", found.features),
                    ("models", found.models),
                )
            },
        }
    )
