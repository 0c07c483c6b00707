"""`POST /v1/simulate`: the period's real usage re-priced on other models, ranked by
intelligence per dollar, with the effect on each customer and the payback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from margindash.api.body import read_json
from margindash.api.deps import ReadCaller, ServicesDep
from margindash.api.errors import invalid_field, json_response
from margindash.api.routers.pnl import resolve_period
from margindash.api.schemas import ERROR_RESPONSES
from margindash.simulator.report import simulation_json
from margindash.simulator.request import SimulateIn, simulation_options
from margindash.simulator.simulation import InvalidOption, simulate

router = APIRouter(prefix="/v1", tags=["simulator"])


def parse_body(raw: Any) -> SimulateIn:
    """The body as a SimulateIn; a 422 naming every bad field otherwise."""
    try:
        return SimulateIn.model_validate(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


@router.post(
    "/simulate",
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SimulateIn"}}
            },
        }
    },
    summary="Re-price real usage on other models, ranked by intelligence per dollar",
)
async def post_simulate(request: Request, caller: ReadCaller, services: ServicesDep) -> Response:
    settings = services.settings
    body = parse_body(await read_json(request, max_bytes=settings.max_body_bytes))
    start, end = resolve_period(caller.org, body.date_from, body.date_to, body.month)
    options = simulation_options(body, date_from=start, date_to=end, settings=settings)
    try:
        simulation = await run_in_threadpool(
            lambda: simulate(
                services.engine,
                org=caller.org,
                catalogue=services.pricer.catalogue,
                options=options,
                default_weights=settings.simulator_weights,
                watch_pct=settings.watch_margin_pct,
            )
        )
    except InvalidOption as exc:
        raise invalid_field(exc.field, exc.message) from None
    return json_response(simulation_json(simulation))
