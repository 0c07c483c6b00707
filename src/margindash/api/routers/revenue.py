"""`/v1/revenue` and `/v1/fx-rates`: revenue per customer and the rates to convert it."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from margindash.api.body import batch_items, read_json
from margindash.api.deps import AdminCaller, IngestCaller, ReadCaller, ServicesDep
from margindash.api.errors import invalid_field, json_response
from margindash.api.schemas import (
    ERROR_RESPONSES,
    ErrorResponse,
    RejectedRevenueResponse,
    RevenueResponse,
    report_json,
)
from margindash.ledger.revenue import load_fx_rates, record_revenue, set_fx_rate
from margindash.metrics import REVENUE_ENTRIES

router = APIRouter(prefix="/v1", tags=["revenue"])

_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/RevenueIn"},
                        {
                            "type": "object",
                            "required": ["revenue"],
                            "properties": {
                                "revenue": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/RevenueIn"},
                                }
                            },
                        },
                    ]
                }
            }
        },
    }
}


@router.post(
    "/revenue",
    response_model=RevenueResponse,
    responses={
        **ERROR_RESPONSES,
        422: {
            "model": RejectedRevenueResponse | ErrorResponse,
            "description": "a single entry was rejected (with its result), or the body is invalid",
        },
    },
    openapi_extra=_BODY_SCHEMA,
    summary="Record revenue for customers (negative amounts are refunds or credits)",
)
async def post_revenue(request: Request, caller: IngestCaller, services: ServicesDep) -> Response:
    settings = services.settings
    body = await read_json(request, max_bytes=settings.max_body_bytes)
    entries, batch = batch_items(body, key="revenue", max_items=settings.max_batch_events)
    report = record_revenue(services.engine, org=caller.org, raw_entries=entries)
    for result in report.results:
        REVENUE_ENTRIES.labels(result.status).inc()
    body_json = report_json(report, id_field="revenue_id")
    for item in body_json["results"]:
        item["amount_usd"] = item.pop("cost_usd")
    if not batch and report.results[0].status == "rejected":
        body_json["error"] = body_json["results"][0]["error"]
        return json_response(body_json, 422)
    return json_response(body_json)


class FxRateIn(BaseModel):
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    rate: str = Field(max_length=40, description="reporting-currency units per one unit")


@router.post("/fx-rates", responses=ERROR_RESPONSES, summary="Set an FX rate for revenue")
def post_fx_rate(body: FxRateIn, caller: AdminCaller, services: ServicesDep) -> Response:
    try:
        rate = set_fx_rate(
            services.engine, org_id=caller.org.id, currency=body.currency, rate=body.rate
        )
    except ValueError as exc:
        field, _, message = str(exc).rpartition(": ")
        raise invalid_field(field or "rate", message) from None
    return json_response({"currency": body.currency.lower(), "rate": str(rate)})


@router.get("/fx-rates", responses=ERROR_RESPONSES, summary="The org's FX rates")
def get_fx_rates(caller: ReadCaller, services: ServicesDep) -> Response:
    rates: dict[str, Decimal] = load_fx_rates(services.engine, caller.org.id)
    return json_response(
        {
            "currency": caller.org.currency,
            "rates": [{"currency": c, "rate": str(r)} for c, r in sorted(rates.items())],
        }
    )
