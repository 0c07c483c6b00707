"""The API's error shape: `{"error": {"code", "message", "details"}}`, and its handlers."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from margindash.ledger.writer import DatabaseUnavailable, driver_error, is_unavailable

log = logging.getLogger(__name__)
RETRY_AFTER_S = "5"


class ApiError(Exception):
    """An error answered to the client with a status, a code and a sentence."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response serialised with orjson."""
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the documented shape; never a bare 500 for client input.

    Also installs the request guard, which refuses oversized bodies and NUL characters in URLs
    before any operation (or the database) sees them.
    """
    from margindash.api.guard import RequestGuard  # it answers in this module's error shape

    app.add_middleware(RequestGuard)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return json_response(
            error_body(exc.code, exc.message, exc.details), exc.status, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        details = [
            {"field": ".".join(str(p) for p in err["loc"][1:]) or "body", "message": err["msg"]}
            for err in exc.errors()
        ]
        fields = ", ".join(d["field"] for d in details)
        return json_response(
            error_body("invalid_request", f"invalid value for {fields}", details), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return json_response(
            error_body(code, str(exc.detail)), exc.status_code, dict(exc.headers or {})
        )

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(_request: Request, exc: DatabaseUnavailable) -> Response:
        log.warning("database unavailable: %s", exc)
        return json_response(
            error_body("database_unavailable", "the database is unavailable; retry shortly"),
            503,
            {"Retry-After": RETRY_AFTER_S},
        )

    # Registered for the class, not caught by the `Exception` handler: Starlette re-raises what
    # that one handles, so uvicorn would log an outage as a crash and drop the connection.
    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> Response:
        if is_unavailable(exc):
            return await _unavailable(request, DatabaseUnavailable(str(driver_error(exc))))
        if _nul_refused(exc):
            message = "a value contains a NUL character, which cannot be stored"
            return json_response(error_body("invalid_request", message), 422)
        raise exc

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_response(error_body("internal_error", "internal error"), 500)


def _nul_refused(exc: DBAPIError) -> bool:
    # psycopg refuses, before sending anything, a string with NUL: PostgreSQL text cannot hold
    # one. Only a client's input carries NUL; the ledger's own checks name the field instead.
    error = driver_error(exc)
    return isinstance(error, psycopg.DataError) and "NUL (0x00)" in str(error)


def invalid_field(field: str, message: str) -> ApiError:
    """A 422 that names the bad field."""
    return ApiError(
        422, "invalid_request", f"{field}: {message}", [{"field": field, "message": message}]
    )
