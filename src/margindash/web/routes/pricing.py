"""`/pricing`: the catalogue and its sync; an org's aliases, custom prices and discounts."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from margindash.api.routers.budgets import EvaluatorDep
from margindash.api.schemas import RowId
from margindash.budgets.evaluator import BudgetEvaluator
from margindash.ledger.repricing import reprice_unpriced
from margindash.pricing.overrides import (
    ALWAYS,
    add_alias,
    add_override,
    delete_alias,
    delete_override,
)
from margindash.web.auth import PageError, verify_csrf
from margindash.web.pages.pricing import build_pricing
from margindash.web.render import AdminPageDep, PageDep, PageScope, respond

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

NOTICES = {
    "alias-added": "Alias added.",
    "override-added": "Price rule added.",
    "alias-deleted": "Alias removed; events it priced keep their cost.",
    "override-deleted": "Price rule removed; events it priced keep their cost.",
}
Text = Annotated[str, Form(max_length=255)]
Price = Annotated[str, Form(max_length=40)]


def _page(
    request: Request,
    page: PageScope,
    *,
    search: str | None = None,
    provider: str | None = None,
    sort: str | None = None,
    direction: str | None = None,
    export: str | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    view = build_pricing(
        page.services.engine,
        org=page.org,
        search=search,
        provider=provider,
        sort=sort,
        direction=direction,
    )
    return respond(
        request,
        page,
        "pricing.html",
        active="pricing",
        tables=view.tables,
        export=export,
        view=view,
        search=search or "",
        provider=provider or "",
        status=status,
        **context,
    )


@router.get("/pricing")
def pricing(
    request: Request,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=255)] = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    sort: Annotated[str | None, Query(max_length=40)] = None,
    direction: Annotated[str | None, Query(alias="dir", max_length=4)] = None,
    export: Annotated[str | None, Query(max_length=40)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
    repriced: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    notice = NOTICES.get(done or "")
    if notice and repriced is not None:
        notice += f" {repriced:,} unpriced events are now priced."
    return _page(
        request,
        page,
        search=q,
        provider=provider,
        sort=sort,
        direction=direction,
        export=export,
        notice=notice,
    )


def _reprice(page: PageScope, evaluator: BudgetEvaluator, reason: str) -> int:
    summary = reprice_unpriced(
        page.services.pricer,
        org=page.org,
        actor=f"dashboard user {page.session.user.email}",
        reason=reason,
    )
    evaluator.request(page.org.id)  # costs moved: budgets and the guard see them now
    return summary.priced


def _done(page: PageScope, notice: str, repriced: int | None = None) -> Response:
    extra = "" if repriced is None else f"&repriced={repriced}"
    return RedirectResponse(
        f"/pricing?done={notice}{extra}&{page.period.query}#rules", status_code=303
    )


def _effective(text: str) -> date:
    try:
        return date.fromisoformat(text) if text else ALWAYS
    except ValueError:
        raise ValueError("effective_from: a date as YYYY-MM-DD") from None


@router.post("/pricing/aliases")
async def new_alias(
    request: Request,
    page: AdminPageDep,
    evaluator: EvaluatorDep,
    alias: Text = "",
    model: Text = "",
    provider: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    services = page.services
    try:
        added = add_alias(
            services.engine,
            org_id=page.org.id,
            alias=alias,
            model=model,
            provider=provider.strip() or None,
            catalogue=services.pricer.history,
        )
    except ValueError as exc:
        return _page(request, page, status=422, error=str(exc))
    reason = f"alias {added.alias} → {added.model} added"
    repriced = await run_in_threadpool(_reprice, page, evaluator, reason)
    return _done(page, "alias-added", repriced)


@router.post("/pricing/overrides")
async def new_override(
    request: Request,
    page: AdminPageDep,
    evaluator: EvaluatorDep,
    kind: Annotated[str, Form(max_length=16)] = "custom",
    model: Text = "",
    provider: Annotated[str, Form(max_length=64)] = "",
    input_per_mtok: Price = "",
    cached_input_per_mtok: Price = "",
    output_per_mtok: Price = "",
    discount_pct: Price = "",
    effective_from: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    discount = kind == "discount"
    try:
        override_id = add_override(
            page.services.engine,
            org_id=page.org.id,
            model=model.strip() or None,
            provider=provider.strip() or None,
            input_per_mtok=None if discount else input_per_mtok.strip() or None,
            output_per_mtok=None if discount else output_per_mtok.strip() or None,
            cached_input_per_mtok=None if discount else cached_input_per_mtok.strip() or None,
            discount_pct=discount_pct.strip().rstrip("%") or "" if discount else None,
            effective_from=_effective(effective_from.strip()),
            catalogue=page.services.pricer.history,
        )
    except ValueError as exc:
        return _page(request, page, status=422, error=str(exc))
    reason = f"override {override_id} added"
    repriced = await run_in_threadpool(_reprice, page, evaluator, reason)
    return _done(page, "override-added", repriced)


@router.post("/pricing/aliases/{alias_id}/delete")
def remove_alias(alias_id: RowId, page: AdminPageDep) -> Response:
    if not delete_alias(page.services.engine, org_id=page.org.id, alias_id=alias_id):
        raise PageError(404, "No such alias", "That alias does not exist (any more).")
    page.services.pricer.rules.invalidate(page.org.id)
    return _done(page, "alias-deleted")


@router.post("/pricing/overrides/{override_id}/delete")
def remove_override(override_id: RowId, page: AdminPageDep) -> Response:
    if not delete_override(page.services.engine, org_id=page.org.id, override_id=override_id):
        raise PageError(404, "No such price rule", "That price rule does not exist (any more).")
    page.services.pricer.rules.invalidate(page.org.id)
    return _done(page, "override-deleted")
