"""`/healthz` and `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from margindash import __version__
from margindash.api.deps import ServicesDep
from margindash.api.errors import json_response
from margindash.db.engine import ping
from margindash.metrics import REGISTRY

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness and database status")
def healthz(services: ServicesDep) -> Response:
    try:
        ping(services.engine)
    except SQLAlchemyError as exc:
        return json_response(
            {"status": "unavailable", "database": "unavailable", "error": type(exc).__name__},
            503,
            {"Retry-After": "5"},
        )
    return json_response(
        {"status": "ok", "database": services.engine.dialect.name, "version": __version__}
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
