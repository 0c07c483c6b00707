"""`/v1/models` and `/v1/pricing/*`: the catalogue and its sync, an org's aliases and overrides,
re-pricing and the audit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from margindash.api.body import read_json
from margindash.api.deps import AdminCaller, Caller, ReadCaller, Services, ServicesDep
from margindash.api.errors import ApiError, invalid_field, json_response
from margindash.api.params import Limit, ThresholdPct
from margindash.api.routers.budgets import EvaluatorDep
from margindash.api.schemas import ERROR_RESPONSES, RowId
from margindash.budgets.evaluator import BudgetEvaluator
from margindash.ledger.repricing import (
    RepriceScope,
    RepriceSummary,
    RepricingRun,
    changed_lines,
    list_repricings,
    reprice_events,
    reprice_unpriced,
)
from margindash.money import format_cost
from margindash.pricing.audit import AuditReport, audit_catalogue
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.listing import (
    ListedModel,
    current_catalogue,
    describe_resolved,
    list_models,
)
from margindash.pricing.overrides import (
    ALWAYS,
    Alias,
    Override,
    add_alias,
    add_override,
    delete_alias,
    delete_override,
    get_override,
    list_aliases,
    list_overrides,
)
from margindash.pricing.rows import ModelChange, decimal_text
from margindash.pricing.snapshots import SnapshotInfo, SnapshotNotFound, find_snapshot
from margindash.pricing.snapshots import list_snapshots as stored_snapshots
from margindash.pricing.snapshots import snapshot_changes as stored_changes
from margindash.pricing.status import PricingStatus, SyncRun, pricing_status, recent_runs
from margindash.pricing.sync import SyncResult, sync_prices

router = APIRouter(prefix="/v1", tags=["pricing"])
_MAX_LINES = 1000
Model = TypeVar("Model", bound=BaseModel)


def _price(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def model_json(
    model: ListedModel, source: str, last_sync: datetime | None = None
) -> dict[str, Any]:
    return {
        "model": model.model,
        "provider": model.provider,
        "name": model.name,
        "input_per_mtok": _price(model.input_per_mtok),
        "cached_input_per_mtok": _price(model.cached_input_per_mtok),
        "cache_write_per_mtok": _price(model.cache_write_per_mtok),
        "output_per_mtok": _price(model.output_per_mtok),
        "tiered": model.tiered,
        "time_window": model.time_window,
        "context_window": model.context_window,
        "effective_from": _day(model.effective_from),
        "checked_at": _time(model.checked_at),
        "snapshot_id": model.snapshot_id,
        "source": source,
        "last_sync": _time(last_sync),
    }


def _parse(model: type[Model], raw: Any) -> Model:
    """The body as `model`; a 422 naming every bad field otherwise."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _invalid(exc: ValueError) -> ApiError:
    field, _, message = str(exc).partition(": ")
    return invalid_field(field if message else "body", message or field)


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


# --- the catalogue ------------------------------------------------------------------------------


@router.get("/models", responses=ERROR_RESPONSES, summary="The price catalogue in force")
def get_models(
    caller: ReadCaller,
    services: ServicesDep,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=255, description="search in ids/names")] = None,
    include_deprecated: bool = False,
) -> Response:
    catalogue = current_catalogue(services.engine)
    last_sync = pricing_status(services.engine).last_success_at
    models = list_models(
        catalogue, provider=provider, search=q, include_deprecated=include_deprecated
    )
    return json_response(
        {
            "count": len(models),
            "source": catalogue.source,
            "snapshot_id": catalogue.snapshot.id if catalogue.snapshot else None,
            "checked_at": _time(catalogue.snapshot.checked_at if catalogue.snapshot else None),
            "last_sync": _time(last_sync),
            "models": [model_json(m, catalogue.source, last_sync) for m in models],
        }
    )


@router.get(
    "/models/{model_name:path}/price",
    responses=ERROR_RESPONSES,
    summary="How a model name resolves, and its price at a time",
)
def get_model_price(
    model_name: str,
    caller: ReadCaller,
    services: ServicesDep,
    at: datetime | None = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    when = at or datetime.now(UTC)
    try:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable instant
        raise invalid_field("at", "out of range") from None
    pricer = services.pricer
    # Input and output prices per 1M tokens, through the org's own rules too, priced on a
    # thousand tokens: a million prompt tokens would cross the thresholds of tiered prices
    # (128k, 200k) and show the input price of a higher tier next to the base output price.
    quote = pricer.price(
        org_id=caller.org.id,
        model_name=model_name,
        provider=provider,
        tokens=TokenCounts(_SAMPLE_TOKENS, 0),
        at=when,
    )
    output = pricer.price(
        org_id=caller.org.id,
        model_name=model_name,
        provider=provider,
        tokens=TokenCounts(0, _SAMPLE_TOKENS),
        at=when,
    )
    body: dict[str, Any] = {
        "model_name": model_name,
        "at": _time(when),
        "priced": quote.priced,
        "model": quote.model,
        "provider": quote.provider,
        "price_source": quote.price_source,
        "price_ref": quote.price_ref,
        "effective_input_per_mtok": _per_mtok(quote.cost_nanos),
        "effective_output_per_mtok": _per_mtok(output.cost_nanos),
        "warnings": list(quote.warnings),
    }
    resolved = pricer.history.resolve_at(model_name, provider, when)
    if resolved is not None:
        catalogue, model = resolved
        listed = describe_resolved(services.engine, catalogue, model, at=when)
        body["catalogue"] = model_json(listed, catalogue.source)
    return json_response(body)


_SAMPLE_TOKENS = 1_000


def _per_mtok(sample_cost_nanos: int | None) -> str | None:
    if sample_cost_nanos is None:
        return None
    return format_cost(sample_cost_nanos * (1_000_000 // _SAMPLE_TOKENS))


# --- sync ---------------------------------------------------------------------------------------


def sync_json(result: SyncResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "status": result.status,
        "error": result.error,
        "snapshot_id": result.snapshot_id,
        "sha256": result.sha256,
        "model_count": result.model_count,
        "seconds": round(result.seconds, 3),
        "added": result.count("added"),
        "removed": result.count("removed"),
        "repriced": result.count("repriced"),
        "changes": [change_json(c, at=datetime.now(UTC)) for c in result.changes[:_MAX_LINES]],
    }


def change_json(change: ModelChange, *, at: datetime) -> dict[str, Any]:
    return {
        "provider": change.provider,
        "model": change.model,
        "change": change.change,
        "fields": [
            {"field": name, "old": _price(old), "new": _price(new)}
            for name, old, new in change.field_changes(at)
        ],
        "old_prices": [r.as_json() for r in change.old],
        "new_prices": [r.as_json() for r in change.new],
    }


@router.post("/pricing/sync", responses=ERROR_RESPONSES, summary="Sync the catalogue now")
async def post_sync(caller: AdminCaller, services: ServicesDep) -> Response:
    settings = services.settings
    result = await run_in_threadpool(
        sync_prices,
        services.engine,
        source=settings.pricing_url,
        triggered_by="api",
        max_jump=settings.pricing_max_jump,
        timeout=settings.pricing_fetch_timeout_seconds,
    )
    services.pricer.reload()
    return json_response(sync_json(result))


def snapshot_json(snapshot: SnapshotInfo | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {
        "id": snapshot.id,
        "status": snapshot.status,
        "source": snapshot.source,
        "sha256": snapshot.sha256,
        "fetched_at": _time(snapshot.fetched_at),
        "checked_at": _time(snapshot.checked_at),
        "effective_from": _time(snapshot.effective_from),
        "providers": snapshot.provider_count,
        "models": snapshot.model_count,
        "review_reasons": snapshot.review_reasons,
        "reviewed_by": snapshot.reviewed_by,
        "reviewed_at": _time(snapshot.reviewed_at),
    }


def run_json(run: SyncRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "status": run.status,
        "error": run.error,
        "source": run.source,
        "triggered_by": run.triggered_by,
        "snapshot_id": run.snapshot_id,
        "sha256": run.sha256,
        "model_count": run.model_count,
        "added": run.models_added,
        "removed": run.models_removed,
        "repriced": run.models_repriced,
    }


def status_json(status: PricingStatus) -> dict[str, Any]:
    staleness = status.staleness
    return {
        "last_success_at": _time(status.last_success_at),
        "last_run": run_json(status.last_run),
        "success_rate_7d": status.success_rate_7d,
        "runs_7d": status.runs_7d,
        "failures_7d": status.failures_7d,
        "stale": status.stale,
        "staleness_seconds": None if staleness is None else int(staleness.total_seconds()),
        "snapshot": snapshot_json(status.snapshot),
        "held_snapshot": snapshot_json(status.held),
    }


@router.get("/pricing/status", responses=ERROR_RESPONSES, summary="Health of the price sync")
def get_status(caller: ReadCaller, services: ServicesDep) -> Response:
    return json_response(status_json(pricing_status(services.engine)))


@router.get("/pricing/sync-runs", responses=ERROR_RESPONSES, summary="Recent price sync runs")
def get_sync_runs(caller: ReadCaller, services: ServicesDep, limit: Limit = 20) -> Response:
    runs = recent_runs(services.engine, limit=limit)
    return json_response({"count": len(runs), "runs": [run_json(r) for r in runs]})


@router.get("/pricing/snapshots", responses=ERROR_RESPONSES, summary="Catalogue snapshots")
def get_snapshots(caller: ReadCaller, services: ServicesDep, limit: Limit = 20) -> Response:
    found = stored_snapshots(services.engine, limit=limit)
    return json_response({"count": len(found), "snapshots": [snapshot_json(s) for s in found]})


@router.get(
    "/pricing/snapshots/{snapshot_id}",
    responses=ERROR_RESPONSES,
    summary="A snapshot and what it changed",
)
def get_snapshot(snapshot_id: RowId, caller: ReadCaller, services: ServicesDep) -> Response:
    try:
        snapshot = find_snapshot(services.engine, snapshot_id)
        changes = stored_changes(services.engine, snapshot_id)
    except SnapshotNotFound:
        raise _not_found("snapshot") from None
    at = snapshot.fetched_at
    return json_response(
        {**(snapshot_json(snapshot) or {}), "changes": [change_json(c, at=at) for c in changes]}
    )


# --- an org's aliases and overrides -------------------------------------------------------------


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    alias: str = Field(min_length=1, max_length=255)
    model: str = Field(min_length=1, max_length=255)
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    effective_from: date = ALWAYS


def alias_json(alias: Alias) -> dict[str, Any]:
    return {
        "id": alias.id,
        "alias": alias.alias,
        "model": alias.model,
        "provider": alias.provider,
        "effective_from": _day(alias.effective_from),
    }


def _reprice_new_rules(
    services: Services, evaluator: BudgetEvaluator, caller: Caller, reason: str
) -> RepriceSummary:
    summary = reprice_unpriced(
        services.pricer, org=caller.org, actor=f"api key {caller.key.id}", reason=reason
    )
    evaluator.request(caller.org.id)  # costs moved: budgets and the guard see them now
    return summary


@router.post(
    "/pricing/aliases",
    status_code=201,
    responses=ERROR_RESPONSES,
    openapi_extra=_body_schema(AliasIn),
    summary="Add an org model alias (re-prices the unpriced events it covers)",
)
async def post_alias(
    request: Request, caller: AdminCaller, services: ServicesDep, evaluator: EvaluatorDep
) -> Response:
    body = _parse(AliasIn, await read_json(request, max_bytes=services.settings.max_body_bytes))
    try:
        alias = add_alias(
            services.engine,
            org_id=caller.org.id,
            alias=body.alias,
            model=body.model,
            provider=body.provider,
            effective_from=body.effective_from,
            catalogue=services.pricer.history,
        )
    except ValueError as exc:
        raise _invalid(exc) from None
    summary = await run_in_threadpool(
        _reprice_new_rules,
        services,
        evaluator,
        caller,
        f"alias {alias.alias} → {alias.model} added",
    )
    return json_response({**alias_json(alias), "repriced_events": summary.priced}, 201)


@router.get("/pricing/aliases", responses=ERROR_RESPONSES, summary="The org's model aliases")
def get_aliases(caller: ReadCaller, services: ServicesDep) -> Response:
    found = list_aliases(services.engine, org_id=caller.org.id)
    return json_response({"count": len(found), "aliases": [alias_json(a) for a in found]})


@router.delete("/pricing/aliases/{alias_id}", responses=ERROR_RESPONSES, summary="Remove an alias")
def remove_alias(alias_id: RowId, caller: AdminCaller, services: ServicesDep) -> Response:
    if not delete_alias(services.engine, org_id=caller.org.id, alias_id=alias_id):
        raise _not_found("alias")
    services.pricer.rules.invalidate(caller.org.id)
    return json_response({"id": alias_id, "deleted": True})


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    model: str | None = Field(default=None, min_length=1, max_length=255)
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    input_per_mtok: str | None = Field(default=None, max_length=40)
    output_per_mtok: str | None = Field(default=None, max_length=40)
    cached_input_per_mtok: str | None = Field(default=None, max_length=40)
    cache_write_per_mtok: str | None = Field(default=None, max_length=40)
    discount_pct: str | None = Field(default=None, max_length=40)
    effective_from: date = ALWAYS
    effective_to: date | None = None


def override_json(override: Override) -> dict[str, Any]:
    return {
        "id": override.id,
        "kind": override.kind,
        "model": override.model,
        "provider": override.provider,
        "input_per_mtok": _price(override.input_per_mtok),
        "output_per_mtok": _price(override.output_per_mtok),
        "cached_input_per_mtok": _price(override.cached_input_per_mtok),
        "cache_write_per_mtok": _price(override.cache_write_per_mtok),
        "discount_pct": _price(override.discount_pct),
        "effective_from": _day(override.effective_from),
        "effective_to": _day(override.effective_to),
        "created_at": _time(override.created_at),
        "deleted_at": _time(override.deleted_at),
    }


@router.post(
    "/pricing/overrides",
    status_code=201,
    responses=ERROR_RESPONSES,
    openapi_extra=_body_schema(OverrideIn),
    summary="Add a custom price or a discount (re-prices the unpriced events it covers)",
)
async def post_override(
    request: Request, caller: AdminCaller, services: ServicesDep, evaluator: EvaluatorDep
) -> Response:
    raw = await read_json(request, max_bytes=services.settings.max_body_bytes)
    body = _parse(OverrideIn, raw)
    try:
        override_id = add_override(
            services.engine,
            org_id=caller.org.id,
            model=body.model,
            provider=body.provider,
            input_per_mtok=body.input_per_mtok,
            output_per_mtok=body.output_per_mtok,
            cached_input_per_mtok=body.cached_input_per_mtok,
            cache_write_per_mtok=body.cache_write_per_mtok,
            discount_pct=body.discount_pct,
            effective_from=body.effective_from,
            effective_to=body.effective_to,
            catalogue=services.pricer.history,
        )
    except ValueError as exc:
        raise _invalid(exc) from None
    summary = await run_in_threadpool(
        _reprice_new_rules, services, evaluator, caller, f"override {override_id} added"
    )
    # The stored row, as GET lists it (normalised prices, kind, created_at), not the input.
    stored = get_override(services.engine, org_id=caller.org.id, override_id=override_id)
    assert stored is not None
    return json_response({**override_json(stored), "repriced_events": summary.priced}, 201)


@router.get(
    "/pricing/overrides", responses=ERROR_RESPONSES, summary="The org's custom prices, discounts"
)
def get_overrides(
    caller: ReadCaller, services: ServicesDep, include_deleted: bool = False
) -> Response:
    found = list_overrides(services.engine, org_id=caller.org.id, include_deleted=include_deleted)
    return json_response({"count": len(found), "overrides": [override_json(o) for o in found]})


@router.delete(
    "/pricing/overrides/{override_id}",
    responses=ERROR_RESPONSES,
    summary="Stop using a custom price or discount (priced events keep their cost)",
)
def remove_override(override_id: RowId, caller: AdminCaller, services: ServicesDep) -> Response:
    if not delete_override(services.engine, org_id=caller.org.id, override_id=override_id):
        raise _not_found("override")
    services.pricer.rules.invalidate(caller.org.id)
    return json_response({"id": override_id, "deleted": True})


# --- re-pricing and audit -----------------------------------------------------------------------


class RepriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    model: str | None = Field(default=None, min_length=1, max_length=255)
    dry_run: bool = False
    reason: str | None = Field(default=None, min_length=1, max_length=1000)


def reprice_json(summary: RepriceSummary, *, dry_run: bool) -> dict[str, Any]:
    lines = list(changed_lines(summary))
    return {
        "dry_run": dry_run,
        "repricing_id": summary.run_id,
        "examined_events": summary.examined,
        "changed_events": summary.changed,
        "newly_priced_events": summary.priced,
        "kept_events": summary.kept,
        "cost_before": format_cost(summary.cost_before),
        "cost_after": format_cost(summary.cost_after),
        "lines": [
            {
                "customer_id": customer,
                "model": before,
                "model_after": after,
                "events": line.events,
                "changed_events": line.changed,
                "cost_before": format_cost(line.cost_before),
                "cost_after": format_cost(line.cost_after),
            }
            for (customer, before, after), line in lines[:_MAX_LINES]
        ],
        "lines_truncated": len(lines) > _MAX_LINES,
    }


@router.post(
    "/pricing/reprice",
    responses=ERROR_RESPONSES,
    openapi_extra=_body_schema(RepriceIn),
    summary="Re-price stored events in a date range (or preview it with dry_run)",
)
async def post_reprice(
    request: Request, caller: AdminCaller, services: ServicesDep, evaluator: EvaluatorDep
) -> Response:
    body = _parse(RepriceIn, await read_json(request, max_bytes=services.settings.max_body_bytes))
    try:
        scope = RepriceScope(date_from=body.date_from, date_to=body.date_to, model=body.model)
    except ValueError as exc:
        raise _invalid(exc) from None
    summary = await run_in_threadpool(
        lambda: reprice_events(
            services.pricer,
            org=caller.org,
            scope=scope,
            actor=f"api key {caller.key.id}",
            reason=body.reason or "re-priced through the API",
            dry_run=body.dry_run,
        )
    )
    if not body.dry_run:
        evaluator.request(caller.org.id)  # costs moved: budgets and the guard see them now
    return json_response(reprice_json(summary, dry_run=body.dry_run))


def repricing_json(run: RepricingRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "actor": run.actor,
        "reason": run.reason,
        "scope": run.scope,
        "from": _day(run.date_from),
        "to": _day(run.date_to),
        "model": run.model,
        "examined_events": run.examined_events,
        "changed_events": run.changed_events,
        "newly_priced_events": run.newly_priced_events,
        "cost_before": format_cost(run.cost_before_nanos),
        "cost_after": format_cost(run.cost_after_nanos),
        "by_model": {
            model: {
                "events": v["events"],
                "changed_events": v["changed"],
                "cost_before": format_cost(v["cost_before"]),
                "cost_after": format_cost(v["cost_after"]),
            }
            for model, v in run.by_model.items()
        },
    }


@router.get(
    "/pricing/repricings", responses=ERROR_RESPONSES, summary="The org's recorded re-pricings"
)
def get_repricings(caller: ReadCaller, services: ServicesDep, limit: Limit = 20) -> Response:
    runs = list_repricings(services.engine, org=caller.org, limit=limit)
    return json_response({"count": len(runs), "repricings": [repricing_json(r) for r in runs]})


def audit_json(report: AuditReport) -> dict[str, Any]:
    return {
        "reference": report.reference,
        "threshold_pct": float(report.threshold_pct),
        "compared_models": report.compared_models,
        "compared_prices": report.compared_prices,
        "count": len(report.differences),
        "differences": [
            {
                "provider": d.provider,
                "model": d.model,
                "field": d.field,
                "catalogue": _price(d.catalogue),
                "reference": _price(d.reference),
                "difference_pct": None if d.difference_pct is None else float(d.difference_pct),
                "reference_key": d.reference_key,
                "match": d.match,
            }
            for d in report.differences
        ],
    }


@router.get(
    "/pricing/audit",
    responses=ERROR_RESPONSES,
    summary="Catalogue prices that differ from a second source (LiteLLM) by more than a threshold",
)
def get_audit(
    caller: ReadCaller,
    services: ServicesDep,
    threshold_pct: ThresholdPct = Decimal(10),
) -> Response:
    report = audit_catalogue(current_catalogue(services.engine), threshold_pct=threshold_pct)
    return json_response(audit_json(report))
