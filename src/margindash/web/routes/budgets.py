"""`/budgets`: budgets with progress bars, create, edit and delete, and the alert history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from margindash.api.routers.budgets import EvaluatorDep
from margindash.budgets.service import (
    BudgetExists,
    create_budget,
    delete_budget,
    replace_budget,
)
from margindash.budgets.spec import InvalidBudget, parse_budget
from margindash.web.auth import PageError, verify_csrf
from margindash.web.pages.budgets import BudgetForm, build_budgets
from margindash.web.render import AdminPageDep, PageDep, PageScope, respond

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])

NOTICES = {
    "created": "Budget created.",
    "saved": "Budget saved.",
    "deleted": "Budget deleted; its alert history is kept.",
}


def budget_form(
    name: Annotated[str, Form(max_length=255)] = "",
    scope_type: Annotated[str, Form(max_length=32)] = "org",
    scope_value: Annotated[str, Form(max_length=520)] = "",
    period: Annotated[str, Form(max_length=16)] = "month",
    limit_usd: Annotated[str, Form(max_length=40)] = "",
    thresholds: Annotated[str, Form(max_length=200)] = "",
    action: Annotated[str, Form(max_length=16)] = "warn",
    emails: Annotated[str, Form(max_length=7000)] = "",
    webhook_url: Annotated[str, Form(max_length=2048)] = "",
) -> BudgetForm:
    return BudgetForm(
        name=name,
        scope_type=scope_type,
        scope_value=scope_value,
        period=period,
        limit_usd=limit_usd,
        thresholds=thresholds,
        action=action,
        emails=emails,
        webhook_url=webhook_url,
    )


FormDep = Annotated[BudgetForm, Depends(budget_form)]


def _page(
    request: Request,
    page: PageScope,
    *,
    export: str | None = None,
    form: BudgetForm | None = None,
    editing: str | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    view = build_budgets(page.services.engine, org=page.org, form=form, editing=editing)
    return respond(
        request,
        page,
        "budgets.html",
        active="budgets",
        tables=view.tables,
        export=export,
        status=status,
        view=view,
        **context,
    )


def _done(page: PageScope, notice: str) -> Response:
    return RedirectResponse(f"/budgets?done={notice}&{page.period.query}", status_code=303)


@router.get("/budgets")
def budgets_page(
    request: Request,
    page: PageDep,
    edit: Annotated[str | None, Query(max_length=40)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
    export: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    editing = edit if page.session.user.is_admin else None
    return _page(request, page, export=export, editing=editing, notice=NOTICES.get(done or ""))


def _invalid(
    request: Request, page: PageScope, form: BudgetForm, editing: str | None, exc: Exception
) -> Response:
    errors = (
        [f"{e.field}: {e.message}" for e in exc.errors]
        if isinstance(exc, InvalidBudget)
        else [str(exc)]
    )
    return _page(request, page, form=form, editing=editing, status=422, errors=errors)


@router.post("/budgets")
def add_budget(
    request: Request, page: AdminPageDep, form: FormDep, evaluator: EvaluatorDep
) -> Response:
    try:
        create_budget(
            page.services.engine,
            org_id=page.org.id,
            spec=parse_budget(form.request()),
            pricer=page.services.pricer,
        )
    except (InvalidBudget, BudgetExists) as exc:
        return _invalid(request, page, form, None, exc)
    evaluator.request(page.org.id)
    return _done(page, "created")


@router.post("/budgets/{budget_id}")
def edit_budget(
    request: Request,
    budget_id: str,
    page: AdminPageDep,
    form: FormDep,
    evaluator: EvaluatorDep,
) -> Response:
    try:
        budget = replace_budget(
            page.services.engine,
            org_id=page.org.id,
            budget_id=budget_id,
            spec=parse_budget(form.request()),
            pricer=page.services.pricer,
        )
    except (InvalidBudget, BudgetExists) as exc:
        return _invalid(request, page, form, budget_id, exc)
    if budget is None:
        raise PageError(404, "No such budget", "That budget does not exist (any more).")
    evaluator.request(page.org.id)
    return _done(page, "saved")


@router.post("/budgets/{budget_id}/delete")
def remove_budget(budget_id: str, page: AdminPageDep, evaluator: EvaluatorDep) -> Response:
    if not delete_budget(page.services.engine, org_id=page.org.id, budget_id=budget_id):
        raise PageError(404, "No such budget", "That budget does not exist (any more).")
    evaluator.guard.invalidate(page.org.id)
    return _done(page, "deleted")
