"""`/v1/stripe/…`: the signed webhook endpoints, customer mappings, settings and the event log.

The webhook endpoints carry no API key: the `Stripe-Signature` header, checked against the org's
signing secrets on the raw body, is their authentication.
"""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request
from prometheus_client import Counter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from margindash.api.deps import AdminCaller, ReadCaller, Services, ServicesDep
from margindash.api.errors import ApiError, invalid_field, json_response
from margindash.api.params import Limit
from margindash.api.schemas import ERROR_RESPONSES
from margindash.metrics import REGISTRY
from margindash.money import format_money
from margindash.orgs.service import Org, get_org
from margindash.stripe_sync.configure import configure_stripe
from margindash.stripe_sync.customers import (
    list_customers,
    list_mappings,
    map_customer,
    unmap_customer,
)
from margindash.stripe_sync.events import InvalidStripeEvent, recent_events
from margindash.stripe_sync.org_config import (
    default_org,
    describe_settings,
    webhook_secrets,
)
from margindash.stripe_sync.webhook import (
    InvalidSignature,
    apply_later,
    receive_event,
    verify_event,
)

router = APIRouter(prefix="/v1/stripe", tags=["stripe"])

STRIPE_EVENTS = Counter(
    "margindash_stripe_events",
    "Stripe webhook events received, by outcome (processed, duplicate, ignored, queued, failed).",
    ["status"],
    registry=REGISTRY,
)

_WEBHOOK_BODY = {
    "security": [],
    "requestBody": {
        "required": True,
        "description": "A Stripe event exactly as Stripe sends it (signed, raw JSON).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "The signature header Stripe adds (`t=…,v1=…`).",
        }
    ],
}


@router.post(
    "/webhook",
    responses=ERROR_RESPONSES,
    openapi_extra=_WEBHOOK_BODY,
    summary="Stripe webhook for the default org (secret: STRIPE_WEBHOOK_SECRET)",
)
async def webhook(request: Request, services: ServicesDep, tasks: BackgroundTasks) -> Response:
    org = await run_in_threadpool(default_org, services.engine, services.settings)
    if org is None:
        named = services.settings.default_org
        raise ApiError(
            404,
            "not_found",
            f"MARGINDASH_DEFAULT_ORG names no org ({named!r})"
            if named
            else "no org to book Stripe revenue into: run `margindash init` first",
        )
    return await _receive(request, services, org, tasks)


@router.post(
    "/webhook/{org_id}",
    responses=ERROR_RESPONSES,
    openapi_extra=_WEBHOOK_BODY,
    summary="Stripe webhook for one org (secrets set with PUT /v1/stripe/settings)",
)
async def org_webhook(
    org_id: str, request: Request, services: ServicesDep, tasks: BackgroundTasks
) -> Response:
    org = await run_in_threadpool(get_org, services.engine, org_id)
    if org is None:
        raise ApiError(404, "not_found", f"no org {org_id!r}")
    return await _receive(request, services, org, tasks)


async def _receive(
    request: Request, services: Services, org: Org, tasks: BackgroundTasks
) -> Response:
    payload = await _raw_body(request, services.settings.max_body_bytes)
    secrets = await run_in_threadpool(webhook_secrets, services.engine, services.settings, org)
    try:
        event = verify_event(payload, request.headers.get("stripe-signature"), secrets)
    except InvalidSignature as exc:
        raise ApiError(400, "invalid_signature", str(exc)) from None
    except InvalidStripeEvent as exc:
        raise ApiError(400, "invalid_event", str(exc)) from None
    received, later = await run_in_threadpool(
        partial(
            receive_event,
            services.engine,
            settings=services.settings,
            org=org,
            event=event,
            payload=payload,
        )
    )
    if later and received.stored is not None:
        tasks.add_task(
            apply_later,
            services.engine,
            settings=services.settings,
            org=org,
            stored=received.stored,
        )
    STRIPE_EVENTS.labels(received.outcome.status).inc()
    return json_response(
        {
            "received": True,
            "event_id": received.event_id,
            "type": received.type,
            "status": received.outcome.status,
            "message": received.outcome.message,
        }
    )


async def _raw_body(request: Request, limit: int) -> bytes:
    """The exact bytes Stripe signed; 413 past the body limit."""
    too_large = ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


@router.get("/customers", responses=ERROR_RESPONSES, summary="Stripe customers and their mapping")
def customers(
    caller: ReadCaller,
    services: ServicesDep,
    unmapped: Annotated[bool, Query(description="Only customers without a mapping.")] = False,
) -> Response:
    found = list_customers(
        services.engine, settings=services.settings, org=caller.org, unmapped_only=unmapped
    )
    return json_response(
        {
            "currency": caller.org.currency,
            "customers": [
                {
                    "stripe_customer_id": c.stripe_customer_id,
                    "livemode": c.livemode,
                    "name": c.name,
                    "email": c.email,
                    "customer_id": c.customer_id,
                    "mapping_source": c.source,
                    "mapped": c.mapped,
                    "revenue": format_money(c.revenue_nanos),
                }
                for c in found
            ],
        }
    )


@router.get("/mappings", responses=ERROR_RESPONSES, summary="Manual Stripe customer mappings")
def mappings(caller: ReadCaller, services: ServicesDep) -> Response:
    found = list_mappings(services.engine, org_id=caller.org.id)
    return json_response(
        {
            "mappings": [
                {
                    "stripe_customer_id": m.stripe_customer_id,
                    "customer_id": m.customer_id,
                    "updated_at": m.updated_at.isoformat(),
                }
                for m in found
            ]
        }
    )


class MappingIn(BaseModel):
    customer_id: str = Field(min_length=1, max_length=255, description="Your app's customer id.")


@router.put(
    "/mappings/{stripe_customer_id}",
    responses=ERROR_RESPONSES,
    summary="Map a Stripe customer to your customer_id (moves its booked revenue)",
)
def put_mapping(
    stripe_customer_id: str, body: MappingIn, caller: AdminCaller, services: ServicesDep
) -> Response:
    try:
        moved = map_customer(
            services.engine,
            settings=services.settings,
            org=caller.org,
            stripe_customer_id=stripe_customer_id,
            customer_id=body.customer_id,
        )
    except ValueError as exc:
        raise _invalid(exc) from None
    return json_response(
        {
            "stripe_customer_id": stripe_customer_id,
            "customer_id": body.customer_id.strip(),
            "moved_entries": moved,
        }
    )


@router.delete(
    "/mappings/{stripe_customer_id}",
    responses=ERROR_RESPONSES,
    summary="Remove a manual mapping (metadata or the cus_ id decide again)",
)
def delete_mapping(stripe_customer_id: str, caller: AdminCaller, services: ServicesDep) -> Response:
    try:
        moved = unmap_customer(
            services.engine,
            settings=services.settings,
            org=caller.org,
            stripe_customer_id=stripe_customer_id,
        )
    except ValueError as exc:
        raise _invalid(exc) from None
    if moved is None:
        raise ApiError(404, "not_found", f"no mapping for {stripe_customer_id!r}")
    return json_response({"stripe_customer_id": stripe_customer_id, "moved_entries": moved})


class StripeSettingsIn(BaseModel):
    webhook_secrets: list[str] | None = Field(
        None, description="Signing secrets of the org's endpoint (several while rotating)."
    )
    mode: Literal["live", "test"] | None = Field(None, description="Which mode to book.")


@router.get("/settings", responses=ERROR_RESPONSES, summary="The org's Stripe settings")
def get_settings(caller: AdminCaller, services: ServicesDep) -> Response:
    view = describe_settings(services.engine, services.settings, caller.org)
    return json_response(asdict(view))


@router.put("/settings", responses=ERROR_RESPONSES, summary="Set webhook secrets or booked mode")
def put_settings(body: StripeSettingsIn, caller: AdminCaller, services: ServicesDep) -> Response:
    try:
        configure_stripe(
            services.engine,
            settings=services.settings,
            org=caller.org,
            webhook_secrets=body.webhook_secrets,
            mode=body.mode,
        )
    except ValueError as exc:
        raise _invalid(exc) from None
    view = describe_settings(services.engine, services.settings, caller.org)
    return json_response(asdict(view))


@router.get("/events", responses=ERROR_RESPONSES, summary="Received Stripe events (audit)")
def events(
    caller: ReadCaller,
    services: ServicesDep,
    status: Annotated[Literal["pending", "processed", "failed"] | None, Query()] = None,
    limit: Limit = 50,
) -> Response:
    rows = recent_events(services.engine, org_id=caller.org.id, status=status, limit=limit)
    return json_response(
        {
            "events": [
                {
                    **row,
                    "created_at": row["created_at"].isoformat(),
                    "received_at": row["received_at"].isoformat(),
                }
                for row in rows
            ]
        }
    )


def _invalid(exc: ValueError) -> ApiError:
    field, _, message = str(exc).partition(": ")
    return invalid_field(field if message else "body", message or str(exc))
