"""`/v1/budgets`: budgets with their spend, and the budget guard (blocklist, check)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from margindash.api.body import read_json
from margindash.api.deps import (
    AdminCaller,
    Caller,
    IngestCaller,
    ReadCaller,
    Services,
    ServicesDep,
)
from margindash.api.errors import ApiError, json_response
from margindash.api.schemas import ERROR_RESPONSES
from margindash.budgets.evaluator import BudgetEvaluator
from margindash.budgets.guard import Blocklist, BlockRule
from margindash.budgets.service import (
    Budget,
    BudgetExists,
    create_budget,
    delete_budget,
    get_budget,
    list_budgets,
    replace_budget,
)
from margindash.budgets.spec import InvalidBudget, Scope, parse_budget, threshold_number
from margindash.budgets.status import BudgetStatus, budget_statuses
from margindash.ledger.events import FieldError
from margindash.money import format_cost, format_money

router = APIRouter(prefix="/v1/budgets", tags=["budgets"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "example": {
                    "name": "Image Generation",
                    "scope": {"type": "feature", "value": "image_generation"},
                    "period": "month",
                    "limit_usd": "600.00",
                    "thresholds": [75, 90],
                    "action": "warn",
                    "notify": {"emails": ["eng-ops@example.com"], "webhook_url": None},
                }
            }
        },
    }
}


def get_evaluator(request: Request) -> BudgetEvaluator:
    evaluator: BudgetEvaluator = request.app.state.budget_evaluator
    return evaluator


EvaluatorDep = Annotated[BudgetEvaluator, Depends(get_evaluator)]


def scope_json(scope: Scope) -> dict[str, Any]:
    body: dict[str, Any] = {"type": scope.type, "value": scope.value}
    if scope.type == "customer_feature":
        body.update(customer_id=scope.customer_id, feature=scope.feature)
    return body


def budget_json(status: BudgetStatus) -> dict[str, Any]:
    budget, spec = status.budget, status.budget.spec
    projected = status.projected_nanos
    return {
        "id": budget.id,
        "name": spec.name,
        "scope": scope_json(spec.scope),
        "period": spec.period,
        # Every digit it was given: a GET-then-PUT must not change the limit (and re-alert).
        "limit_usd": format_cost(spec.limit_nanos),
        "thresholds": [threshold_number(t) for t in spec.thresholds],
        "action": spec.action,
        "notify": {"emails": list(spec.notify.emails), "webhook_url": spec.notify.webhook_url},
        "period_start": status.period.first_day.isoformat(),
        "period_end": status.period.last_day.isoformat(),
        "spent_usd": format_money(status.spent_nanos),
        "used_pct": status.used_pct,
        "projected_usd": None if projected is None else format_money(projected),
        "state": status.state,
        "blocking": status.blocking,
        "alerts": ["projected_to_exceed"] if status.projected_to_exceed else [],
        "created_at": _timestamp(budget.created_at),
        "updated_at": _timestamp(budget.updated_at),
    }


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def invalid_fields(errors: list[FieldError]) -> ApiError:
    """A 422 naming each bad field (budget bodies, monitor settings)."""
    fields = ", ".join(e.field for e in errors)
    messages = "; ".join(f"{e.field}: {e.message}" for e in errors)
    details = [{"field": e.field, "message": e.message} for e in errors]
    return ApiError(422, "invalid_request", f"invalid value for {fields}: {messages}", details)


def _status_of(services: Services, caller: Caller, budget: Budget) -> BudgetStatus:
    now = datetime.now(UTC)
    return budget_statuses(services.engine, org=caller.org, budgets=[budget], now=now)[0]


def _not_found(budget_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no budget with id {budget_id!r}")


@router.post(
    "", status_code=201, responses=ERROR_RESPONSES, openapi_extra=_BODY, summary="Create a budget"
)
async def post_budget(
    request: Request, caller: AdminCaller, services: ServicesDep, evaluator: EvaluatorDep
) -> Response:
    raw = await read_json(request, max_bytes=services.settings.max_body_bytes)
    try:
        budget = create_budget(
            services.engine,
            org_id=caller.org.id,
            spec=parse_budget(raw),
            pricer=services.pricer,
        )
    except InvalidBudget as exc:
        raise invalid_fields(exc.errors) from None
    except BudgetExists as exc:
        raise ApiError(409, "budget_exists", str(exc)) from None
    evaluator.request(caller.org.id)
    return json_response(budget_json(_status_of(services, caller, budget)), 201)


@router.get("", responses=ERROR_RESPONSES, summary="Budgets with spend, used % and projection")
def get_budgets(caller: ReadCaller, services: ServicesDep) -> Response:
    found = list_budgets(services.engine, org_id=caller.org.id)
    statuses = budget_statuses(
        services.engine, org=caller.org, budgets=found, now=datetime.now(UTC)
    )
    return json_response({"count": len(statuses), "budgets": [budget_json(s) for s in statuses]})


def blocklist_json(blocklist: Blocklist) -> dict[str, Any]:
    return {"version": blocklist.version, "blocked": [_rule_json(r) for r in blocklist.rules]}


def _rule_json(rule: BlockRule) -> dict[str, Any]:
    return {
        **scope_json(rule.scope),
        "budget_id": rule.budget_id,
        "budget_name": rule.name,
        "until": _timestamp(rule.until),
    }


@router.get(
    "/blocklist",
    responses={**ERROR_RESPONSES, 304: {"description": "unchanged since the ETag sent"}},
    summary="What exhausted block budgets stop (for SDKs), with an ETag",
)
def get_blocklist(request: Request, caller: IngestCaller, evaluator: EvaluatorDep) -> Response:
    blocklist = evaluator.guard.blocklist(caller.org.id)
    etag = f'"{blocklist.version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    sent = _etags(request.headers.get("if-none-match"))
    if etag in sent or "*" in sent:
        return Response(status_code=304, headers=headers)
    return json_response(blocklist_json(blocklist), headers=headers)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


Attribute = Annotated[str | None, Query(min_length=1, max_length=255)]


@router.get("/check", responses=ERROR_RESPONSES, summary="Would a block budget stop this call?")
def check_budget(
    caller: IngestCaller,
    services: ServicesDep,
    evaluator: EvaluatorDep,
    customer_id: Attribute = None,
    feature: Attribute = None,
    model: Attribute = None,
) -> Response:
    blocklist = evaluator.guard.blocklist(caller.org.id)
    # Model budgets name the model as events are booked: resolve the call's name the same way.
    booked = (
        None
        if model is None
        else services.pricer.booked_model(org_id=caller.org.id, model_name=model)
    )
    blocking = blocklist.blocking(customer_id=customer_id, feature=feature, model=booked)
    return json_response(
        {
            "allowed": not blocking,
            "version": blocklist.version,
            "blocked_by": [_rule_json(rule) for rule in blocking],
            "model": booked,
        }
    )


@router.get("/{budget_id}", responses=ERROR_RESPONSES, summary="One budget with its spend")
def get_one_budget(budget_id: str, caller: ReadCaller, services: ServicesDep) -> Response:
    budget = get_budget(services.engine, org_id=caller.org.id, budget_id=budget_id)
    if budget is None:
        raise _not_found(budget_id)
    return json_response(budget_json(_status_of(services, caller, budget)))


@router.put(
    "/{budget_id}",
    responses=ERROR_RESPONSES,
    openapi_extra=_BODY,
    summary="Replace a budget's definition",
)
async def put_budget(
    budget_id: str,
    request: Request,
    caller: AdminCaller,
    services: ServicesDep,
    evaluator: EvaluatorDep,
) -> Response:
    raw = await read_json(request, max_bytes=services.settings.max_body_bytes)
    try:
        spec = parse_budget(raw)
        budget = replace_budget(
            services.engine,
            org_id=caller.org.id,
            budget_id=budget_id,
            spec=spec,
            pricer=services.pricer,
        )
    except InvalidBudget as exc:
        raise invalid_fields(exc.errors) from None
    except BudgetExists as exc:
        raise ApiError(409, "budget_exists", str(exc)) from None
    if budget is None:
        raise _not_found(budget_id)
    evaluator.request(caller.org.id)
    return json_response(budget_json(_status_of(services, caller, budget)))


@router.delete("/{budget_id}", responses=ERROR_RESPONSES, summary="Delete a budget")
def remove_budget(
    budget_id: str, caller: AdminCaller, services: ServicesDep, evaluator: EvaluatorDep
) -> Response:
    if not delete_budget(services.engine, org_id=caller.org.id, budget_id=budget_id):
        raise _not_found(budget_id)
    evaluator.guard.invalidate(caller.org.id)
    return json_response({"id": budget_id, "deleted": True})
