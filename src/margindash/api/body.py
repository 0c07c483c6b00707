"""Reading JSON bodies with the limits the API promises (400, 413, 415)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from margindash.api.errors import ApiError


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """The request's JSON body; 413 past `max_bytes`, 415 if not JSON, 400 if malformed."""
    content_type = request.headers.get("content-type", "application/json").lower()
    if "json" not in content_type:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks = bytearray()
    # ASGI messages read directly: `request.stream()` is an async generator, and asyncio
    # registers every new one in a WeakSet, which cost a tenth of the ingest loop's time.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":  # the client hung up mid-body: its fault
            raise ApiError(400, "incomplete_body", "the connection closed before the body ended")
        chunks += message.get("body", b"")
        if len(chunks) > max_bytes:
            raise _too_large(max_bytes)
        if not message.get("more_body", False):
            break
    try:
        return orjson.loads(chunks)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the body is larger than {max_bytes} bytes")


def batch_items(body: Any, *, key: str, max_items: int) -> tuple[list[Any], bool]:
    """The items of a single-object or `{key: [...]}` body, and whether it was a batch."""
    if isinstance(body, dict) and key in body:
        items = body[key]
        if not isinstance(items, list):
            raise ApiError(
                422,
                "invalid_request",
                f"`{key}` must be an array",
                [{"field": key, "message": "must be an array"}],
            )
        batch = True
    elif isinstance(body, list):
        items, batch = body, True
    elif isinstance(body, dict):
        items, batch = [body], False
    else:
        raise ApiError(
            422,
            "invalid_request",
            "the body must be a JSON object",
            [{"field": "body", "message": "must be an object"}],
        )
    if len(items) > max_items:
        raise ApiError(
            413, "batch_too_large", f"at most {max_items} items per request (got {len(items)})"
        )
    if batch and not items:
        raise ApiError(
            422,
            "invalid_request",
            f"`{key}` is empty",
            [{"field": key, "message": "at least one item"}],
        )
    return items, batch
