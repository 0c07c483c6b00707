"""Checks on every request before routing, for what no operation accepts.

- A body over `MARGINDASH_MAX_BODY_BYTES` → 413 before the API key is checked, whether
  `Content-Length` announces it or a chunked body reaches it: a body without `Content-Length`
  is read here first, counting bytes and stopping at the limit, so both get the same answer.
  Operations with a declared body model would otherwise read and parse any size.
- A NUL character in the URL path or query → 422: PostgreSQL text cannot hold one, so no
  stored id can contain it, and a query with it would fail in the database.
"""

from __future__ import annotations

from collections import deque
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from margindash.api.errors import error_body, json_response

_NUL = "\x00"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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
        if declared is None and scope["method"] in _BODY_METHODS:
            received = await _read_up_to(receive, limit)
            if received is None:
                await _refuse_too_large(limit, scope, receive, send)
                return
            await self.app(scope, _replay(received, receive), send)
            return
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse_too_large(limit, scope, receive, send)
            return
        await self.app(scope, _limited(receive, limit), send)


async def _refuse_too_large(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
    body = error_body("payload_too_large", _too_large(limit))
    await json_response(body, 413)(scope, receive, send)


async def _read_up_to(receive: Receive, limit: int) -> list[Message] | None:
    """A body of unannounced size (chunked), read whole: one message to hand on, or the ones
    up to the client's disconnect; None once it passes `limit` bytes (nothing more is read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client hung up: the app sees it too
            return [{"type": "http.request", "body": b"".join(chunks), "more_body": True}, message]
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that first hands out `messages`, then defers to the server's."""
    pending = deque(messages)

    async def replayed() -> Message:
        return pending.popleft() if pending else await receive()

    return replayed


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
