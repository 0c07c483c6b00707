"""`/v1/usage`: ingest usage events, dry-run them, read one back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from margindash.api.body import batch_items, read_json
from margindash.api.deps import IngestCaller, ReadCaller, ServicesDep, authenticate, services_of
from margindash.api.errors import ApiError, json_response
from margindash.api.schemas import (
    ERROR_RESPONSES,
    ErrorResponse,
    IngestResponse,
    RejectedResponse,
    report_json,
)
from margindash.ledger.ingest import IngestReport, stored_event
from margindash.metrics import ESTIMATED_EVENTS, EVENTS, INGEST_SECONDS, UNPRICED_EVENTS
from margindash.money import format_cost

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/usage", tags=["usage"])

_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/UsageEventIn"},
                        {
                            "type": "object",
                            "required": ["events"],
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/UsageEventIn"},
                                    "maxItems": 1000,
                                }
                            },
                        },
                    ]
                }
            }
        },
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    422: {
        "model": RejectedResponse | ErrorResponse,
        "description": "a single event was rejected (with its result), or the body is invalid",
    },
}


def _answer(report: IngestReport, batch: bool) -> Response:
    body = report_json(report)
    status = 422 if not batch and report.results[0].status == "rejected" else 200
    if status == 422:
        body["error"] = body["results"][0]["error"]
    return json_response(body, status)


# Bound once: `labels()` looks its child up under a lock on every call.
_EVENTS_BY_STATUS = {
    status: EVENTS.labels(status) for status in ("accepted", "duplicate", "rejected")
}


def _count(report: IngestReport, org_id: str) -> None:
    # Counters are bumped once per request and status: per-event `labels()` calls add up.
    tally: Counter[str] = Counter()
    for result in report.results:
        tally[result.status] += 1
        if result.status == "rejected":
            log.info(
                "usage event rejected",
                extra={
                    "org_id": org_id,
                    "request_id": result.request_id,
                    "errors": [f"{e.field}: {e.message}" for e in result.errors],
                },
            )
        elif result.status == "accepted":
            tally["unpriced"] += not result.priced
            tally["estimated"] += result.estimated
    for status, counter in _EVENTS_BY_STATUS.items():
        if tally[status]:
            counter.inc(tally[status])
    if tally["unpriced"]:
        UNPRICED_EVENTS.inc(tally["unpriced"])
    if tally["estimated"]:
        ESTIMATED_EVENTS.inc(tally["estimated"])


@router.post(
    "",
    response_model=IngestResponse,
    responses=_RESPONSES,
    openapi_extra=_BODY_SCHEMA,
    summary="Ingest one usage event or a batch",
)
async def ingest_usage(request: Request) -> Response:
    started = time.perf_counter()
    # Resolved by hand, not with `Depends`: on the busiest endpoint, FastAPI's dependency
    # solving cost more per request than checking and pricing the event.
    services = services_of(request)
    caller = await authenticate(request, services, "ingest")
    settings = services.settings
    body = await read_json(request, max_bytes=settings.max_body_bytes)
    events, batch = batch_items(body, key="events", max_items=settings.max_batch_events)
    report = await services.ingestor.ingest(org=caller.org, raw_events=events)
    _count(report, caller.org.id)
    INGEST_SECONDS.observe(time.perf_counter() - started)
    return _answer(report, batch)


@router.post(
    "/dry-run",
    response_model=IngestResponse,
    responses=_RESPONSES,
    openapi_extra=_BODY_SCHEMA,
    summary="Check and price events without storing them",
)
async def dry_run_usage(request: Request, caller: IngestCaller, services: ServicesDep) -> Response:
    settings = services.settings
    body = await read_json(request, max_bytes=settings.max_body_bytes)
    events, batch = batch_items(body, key="events", max_items=settings.max_batch_events)
    # It reads which ids are stored already: in a worker thread, off the event loop.
    report = await asyncio.to_thread(services.ingestor.dry_run, org=caller.org, raw_events=events)
    return _answer(report, batch)


# `:path`, so ids with a slash (`team/42/req-7`) can be read back when sent as `%2F`.
@router.get("/{request_id:path}", responses=ERROR_RESPONSES, summary="A stored event and its price")
def get_usage_event(request_id: str, caller: ReadCaller, services: ServicesDep) -> Response:
    row = stored_event(services.engine, org_id=caller.org.id, request_id=request_id)
    if row is None:
        raise ApiError(404, "not_found", f"no usage event with request_id {request_id!r}")
    return json_response(
        {
            "request_id": row.request_id,
            "customer_id": row.customer_id,
            "feature": row.feature,
            "model_name": row.model_name,
            "model": row.model,
            "provider": row.provider,
            "timestamp": row.occurred_at.isoformat().replace("+00:00", "Z"),
            "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens,
            "cached_tokens": row.cached_tokens,
            "cache_write_tokens": row.cache_write_tokens,
            "reasoning_tokens": row.reasoning_tokens,
            "cost_usd": format_cost(row.cost_nanos),
            "priced": row.cost_nanos is not None,
            "price_source": row.price_source,
            "price_ref": row.price_ref,
            "estimated": row.estimated,
            "revenue_amount_cents": row.revenue_cents,
            "metadata": orjson.loads(row.metadata) if row.metadata else {},
            "received_at": row.received_at.isoformat().replace("+00:00", "Z"),
        }
    )
