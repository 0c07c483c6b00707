"""`/v1/alerts` (fired alerts with their delivery status) and `/v1/monitors` (their settings)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from margindash.api.body import read_json
from margindash.api.deps import AdminCaller, ReadCaller, ServicesDep
from margindash.api.errors import ApiError, json_response
from margindash.api.params import Limit
from margindash.api.routers.budgets import invalid_fields
from margindash.api.schemas import ERROR_RESPONSES
from margindash.budgets.alerts import Delivery, StoredAlert, list_alerts
from margindash.budgets.monitors import (
    KINDS,
    InvalidMonitor,
    MonitorConfig,
    configure_monitor,
    monitor_configs,
)
from margindash.budgets.spec import threshold_number
from margindash.money import format_money

router = APIRouter(prefix="/v1", tags=["alerts"])

AlertStatus = Literal["pending", "delivered", "failed", "no_channel"]


def _timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "channel": delivery.channel,
        "target": delivery.target,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "error": delivery.last_error,
        "next_attempt_at": _timestamp(delivery.next_attempt_at),
        "delivered_at": _timestamp(delivery.delivered_at),
    }


def alert_json(alert: StoredAlert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "budget_id": alert.budget_id,
        "subject": alert.subject,
        "message": alert.body,
        "details": alert.details,
        "status": alert.status,
        "created_at": _timestamp(alert.created_at),
        "deliveries": [delivery_json(d) for d in alert.deliveries],
    }


@router.get("/alerts", responses=ERROR_RESPONSES, summary="Fired alerts with delivery status")
def get_alerts(
    caller: ReadCaller,
    services: ServicesDep,
    limit: Limit = 50,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    status: AlertStatus | None = None,
    budget_id: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    found = list_alerts(
        services.engine,
        org_id=caller.org.id,
        limit=limit,
        kind=kind,
        status=status,
        budget_id=budget_id,
    )
    return json_response({"count": len(found), "alerts": [alert_json(a) for a in found]})


def monitor_json(config: MonitorConfig) -> dict[str, Any]:
    kind = KINDS[config.kind]
    return {
        "kind": config.kind,
        "watches": kind.watches,
        "enabled": config.enabled,
        "threshold": threshold_number(config.threshold),
        "threshold_means": kind.threshold_means,
        "min_volume_usd": format_money(config.min_volume_nanos),
        "lookback": config.lookback,
        "notify": {"emails": list(config.emails), "webhook_url": config.webhook_url},
    }


@router.get("/monitors", responses=ERROR_RESPONSES, summary="Monitors and their settings")
def get_monitors(caller: ReadCaller, services: ServicesDep) -> Response:
    configs = monitor_configs(services.engine, org_id=caller.org.id)
    return json_response({"monitors": [monitor_json(c) for c in configs]})


@router.patch("/monitors/{kind}", responses=ERROR_RESPONSES, summary="Change a monitor")
async def patch_monitor(
    kind: str, request: Request, caller: AdminCaller, services: ServicesDep
) -> Response:
    if kind not in KINDS:
        raise ApiError(404, "not_found", f"no monitor {kind!r}; one of {', '.join(KINDS)}")
    raw = await read_json(request, max_bytes=services.settings.max_body_bytes)
    if not isinstance(raw, dict):
        raise ApiError(
            422,
            "invalid_request",
            "the body must be a JSON object",
            [{"field": "body", "message": "must be an object"}],
        )
    try:
        config = configure_monitor(services.engine, org_id=caller.org.id, kind=kind, changes=raw)
    except InvalidMonitor as exc:
        raise invalid_fields(exc.errors) from None
    return json_response(monitor_json(config))
