"""Overview, customers, one customer, features and models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from margindash.web.auth import PageError
from margindash.web.pages.breakdowns import build_breakdown
from margindash.web.pages.customers import build_customer, build_customers
from margindash.web.pages.overview import build_overview
from margindash.web.render import PageDep, respond

router = APIRouter(include_in_schema=False)

Export = Annotated[str | None, Query(max_length=40)]
Search = Annotated[str | None, Query(max_length=255)]
Sort = Annotated[str | None, Query(max_length=40)]
Direction = Annotated[str | None, Query(alias="dir", max_length=4)]


@router.get("/")
def overview(request: Request, page: PageDep, export: Export = None) -> Response:
    view = build_overview(
        page.services.engine,
        org=page.org,
        period=page.period,
        watch_pct=page.services.settings.watch_margin_pct,
    )
    return respond(
        request,
        page,
        "overview.html",
        active="overview",
        tables=view.tables,
        export=export,
        view=view,
        ingest_url=page.services.settings.ingest_url,
    )


@router.get("/customers")
def customers(
    request: Request,
    page: PageDep,
    q: Search = None,
    sort: Sort = None,
    direction: Direction = None,
    export: Export = None,
) -> Response:
    view = build_customers(
        page.services.engine,
        org=page.org,
        period=page.period,
        watch_pct=page.services.settings.watch_margin_pct,
        search=q,
        sort=sort,
        direction=direction,
    )
    return respond(
        request,
        page,
        "customers.html",
        active="customers",
        tables=view.tables,
        export=export,
        view=view,
        search=q or "",
    )


@router.get("/customers/{customer_id:path}")
def customer(request: Request, customer_id: str, page: PageDep, export: Export = None) -> Response:
    view = build_customer(
        page.services.engine,
        org=page.org,
        customer_id=customer_id,
        period=page.period,
        watch_pct=page.services.settings.watch_margin_pct,
    )
    if view is None:
        raise PageError(404, "Unknown customer", f"No usage or revenue for {customer_id!r} yet.")
    return respond(
        request,
        page,
        "customer.html",
        active="customers",
        tables=view.tables,
        export=export,
        view=view,
    )


def _breakdown(
    request: Request,
    page: PageDep,
    dimension: str,
    q: str | None,
    sort: str | None,
    direction: str | None,
    export: str | None,
) -> Response:
    view = build_breakdown(
        page.services.engine,
        org=page.org,
        period=page.period,
        dimension=dimension,
        search=q,
        sort=sort,
        direction=direction,
        pricer=page.services.pricer,
    )
    return respond(
        request,
        page,
        "breakdown.html",
        active=f"{dimension}s",
        tables=view.tables,
        export=export,
        view=view,
        search=q or "",
    )


@router.get("/features")
def features(
    request: Request,
    page: PageDep,
    q: Search = None,
    sort: Sort = None,
    direction: Direction = None,
    export: Export = None,
) -> Response:
    return _breakdown(request, page, "feature", q, sort, direction, export)


@router.get("/models")
def models(
    request: Request,
    page: PageDep,
    q: Search = None,
    sort: Sort = None,
    direction: Direction = None,
    export: Export = None,
) -> Response:
    return _breakdown(request, page, "model", q, sort, direction, export)
