"""`/v1/models` and `/v1/pricing/*`: the catalogue, and an org's aliases and custom prices."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from margindash.api.deps import AdminCaller, ReadCaller, ServicesDep
from margindash.api.errors import invalid_field, json_response
from margindash.api.schemas import ERROR_RESPONSES
from margindash.ledger.repricing import reprice_unpriced
from margindash.money import format_cost
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.listing import ListedModel, describe, list_models
from margindash.pricing.overrides import add_alias, add_override

router = APIRouter(prefix="/v1", tags=["pricing"])


def _price(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def model_json(model: ListedModel, source: str) -> dict[str, Any]:
    return {
        "model": model.model,
        "provider": model.provider,
        "name": model.name,
        "input_per_mtok": _price(model.input_per_mtok),
        "cached_input_per_mtok": _price(model.cached_input_per_mtok),
        "cache_write_per_mtok": _price(model.cache_write_per_mtok),
        "output_per_mtok": _price(model.output_per_mtok),
        "tiered": model.tiered,
        "context_window": model.context_window,
        "effective_from": model.effective_from.isoformat() if model.effective_from else None,
        "source": source,
        "last_sync": None,
    }


@router.get("/models", responses=ERROR_RESPONSES, summary="The price catalogue")
def get_models(
    caller: ReadCaller,
    services: ServicesDep,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=255, description="search in ids/names")] = None,
    include_deprecated: bool = False,
) -> Response:
    catalogue = services.pricer.catalogue
    models = list_models(
        catalogue, provider=provider, search=q, include_deprecated=include_deprecated
    )
    return json_response(
        {"count": len(models), "models": [model_json(m, catalogue.source) for m in models]}
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
    when = (
        (at or datetime.now(UTC)).astimezone(UTC)
        if (at is None or at.tzinfo)
        else at.replace(tzinfo=UTC)
    )
    pricer = services.pricer
    # The price of one million input and output tokens, through the org's own rules too.
    quote = pricer.price(
        org_id=caller.org.id,
        model_name=model_name,
        provider=provider,
        tokens=TokenCounts(1_000_000, 0),
        at=when,
    )
    output = pricer.price(
        org_id=caller.org.id,
        model_name=model_name,
        provider=provider,
        tokens=TokenCounts(0, 1_000_000),
        at=when,
    )
    body: dict[str, Any] = {
        "model_name": model_name,
        "at": when.isoformat().replace("+00:00", "Z"),
        "priced": quote.priced,
        "model": quote.model,
        "provider": quote.provider,
        "price_source": quote.price_source,
        "price_ref": quote.price_ref,
        "effective_input_per_mtok": format_cost(quote.cost_nanos),
        "effective_output_per_mtok": format_cost(output.cost_nanos),
        "warnings": list(quote.warnings),
    }
    resolved = pricer.catalogue.resolve(model_name, provider)
    if resolved is not None:
        body["catalogue"] = model_json(
            describe(pricer.catalogue, resolved, when), pricer.catalogue.source
        )
    return json_response(body)


class AliasIn(BaseModel):
    alias: str = Field(min_length=1, max_length=255)
    model: str = Field(min_length=1, max_length=255)
    provider: str | None = Field(default=None, max_length=64)


class OverrideIn(BaseModel):
    model: str | None = Field(default=None, min_length=1, max_length=255)
    provider: str | None = Field(default=None, max_length=64)
    input_per_mtok: str | None = Field(default=None, max_length=40)
    output_per_mtok: str | None = Field(default=None, max_length=40)
    cached_input_per_mtok: str | None = Field(default=None, max_length=40)
    cache_write_per_mtok: str | None = Field(default=None, max_length=40)
    discount_pct: str | None = Field(default=None, max_length=40)
    effective_from: date = Field(default=date(1970, 1, 1))


@router.post("/pricing/aliases", responses=ERROR_RESPONSES, summary="Add an org model alias")
def post_alias(body: AliasIn, caller: AdminCaller, services: ServicesDep) -> Response:
    try:
        add_alias(
            services.engine,
            org_id=caller.org.id,
            alias=body.alias,
            model=body.model,
            provider=body.provider,
        )
    except ValueError as exc:
        raise invalid_field("alias", str(exc)) from None
    summary = reprice_unpriced(services.pricer, org=caller.org)
    return json_response(
        {
            "alias": body.alias,
            "model": body.model,
            "provider": body.provider,
            "repriced_events": summary.priced,
        },
        201,
    )


@router.post(
    "/pricing/overrides", responses=ERROR_RESPONSES, summary="Add a custom price or a discount"
)
def post_override(body: OverrideIn, caller: AdminCaller, services: ServicesDep) -> Response:
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
        )
    except ValueError as exc:
        field, _, message = str(exc).rpartition(": ")
        raise invalid_field(field or "body", message) from None
    summary = reprice_unpriced(services.pricer, org=caller.org)
    return json_response(
        {"id": override_id, **body.model_dump(mode="json"), "repriced_events": summary.priced},
        201,
    )
