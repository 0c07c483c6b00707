"""`/simulator`: what the period's usage would cost on other models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from margindash.web.pages.simulator import SimulatorForm, build_simulator
from margindash.web.render import PageDep, respond

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Query(max_length=255)]


@router.get("/simulator")
async def simulator(
    request: Request,
    page: PageDep,
    feature: Text = "",
    customer_id: Text = "",
    max_quality_drop_pct: Annotated[str, Query(max_length=20)] = "",
    min_quality: Annotated[str, Query(max_length=20)] = "",
    candidates: Annotated[str, Query(max_length=4000)] = "",
    export: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    form = SimulatorForm(feature, customer_id, max_quality_drop_pct, min_quality, candidates)
    services = page.services
    view = await run_in_threadpool(
        lambda: build_simulator(
            services.engine,
            services.pricer.catalogue,
            services.settings,
            org=page.org,
            period=page.period,
            form=form,
        )
    )
    return respond(
        request,
        page,
        "simulator.html",
        active="simulator",
        tables=view.tables,
        export=export,
        view=view,
    )
