"""Checks on every request before routing, for what no operation accepts.

- A body over `MARGINDASH_MAX_BODY_BYTES` → 413, whether `Content-Length` announces it or a
  chunked body reaches it. Operations with a declared body model would otherwise read and
  parse any size, before the API key is even checked.
- A NUL character in the URL path or query → 422: PostgreSQL text cannot hold one, so no
  stored id can contain it, and a query with it would fail in the database.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from margindash.api.errors import error_body, json_response

_NUL = "\x00"


class RequestGuard:
    """ASGI middleware refusing oversized bodies (413) and NUL characters in URLs (422)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bad_fields = _fields_with_nul(scope)
        if bad_fields:
            details = [
                {"field": f, "message": "must not contain NUL characters"} for f in bad_fields
            ]
            body = error_body("invalid_request", "the URL contains a NUL character", details)
            await json_response(body, 422)(scope, receive, send)
            return
        limit: int = scope["app"].state.services.settings.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            body = error_body("payload_too_large", _too_large(limit))
            await json_response(body, 413)(scope, receive, send)
            return
        await self.app(scope, _limited(receive, limit), send)


def _content_length(scope: Scope) -> bytes | None:
    # The raw header list, scanned once: this runs on every request, and building a `Headers`
    # mapping to read one value costs more than the scan.
    for name, value in scope["headers"]:
        if name == b"content-length":  # ASGI servers send names lower-cased
            return bytes(value)
    return None


def _fields_with_nul(scope: Scope) -> list[str]:
    fields = ["path"] if _NUL in scope["path"] else []
    query = scope["query_string"].decode("latin-1")
    if "%00" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        fields += sorted({name for name, value in pairs if _NUL in name + value})
    return fields


def _limited(receive: Receive, limit: int) -> Receive:
    """`receive` that raises 413 once the body read so far passes `limit` bytes."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, _too_large(limit))
        return message

    return limited_receive


def _too_large(limit: int) -> str:
    return f"the body is larger than {limit} bytes"
