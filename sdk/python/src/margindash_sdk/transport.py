"""One HTTP attempt to deliver a batch, classified as done or worth retrying."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .config import Options

# Retrying these is safe because request_id / revenue_id make every delivery idempotent.
RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER = 60.0

ENDPOINTS = {"usage": ("usage", "events"), "revenue": ("revenue", "revenue")}


@dataclass(frozen=True)
class SendResult:
    """What one attempt achieved; `retry` means nothing was settled and it may be tried again."""

    retry: bool
    retry_after: float | None = None
    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    problem: str | None = None
    problem_key: str | None = None


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Capped exponential delay for retry `attempt` (1-based) with equal jitter."""
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(raw: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), capped at one minute."""
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def to_wire(payload: dict[str, Any]) -> dict[str, Any]:
    """Render the capture-time float timestamp as RFC 3339, off the caller's thread."""
    stamp = payload.get("timestamp")
    if isinstance(stamp, float):
        rendered = datetime.fromtimestamp(stamp, UTC).isoformat(timespec="microseconds")
        return {**payload, "timestamp": rendered.replace("+00:00", "Z")}
    return payload


class Transport:
    """Posts batches to the ingest API over one pooled HTTP connection."""

    def __init__(self, options: Options, *, user_agent: str) -> None:
        headers = {"User-Agent": user_agent, "Content-Type": "application/json"}
        if options.api_key:
            headers["Authorization"] = f"Bearer {options.api_key}"
        self._http = httpx.Client(
            base_url=options.base_url, headers=headers, timeout=options.timeout
        )

    def send(self, kind: str, payloads: list[dict[str, Any]], *, timeout: float) -> SendResult:
        """Attempt one delivery of `payloads` of `kind` ("usage" or "revenue")."""
        path, key = ENDPOINTS[kind]
        body = json.dumps({key: [to_wire(p) for p in payloads]}, separators=(",", ":"))
        try:
            response = self._http.post(path, content=body, timeout=timeout)
        except httpx.HTTPError as exc:
            return SendResult(retry=True, problem=f"network error: {type(exc).__name__}")
        if response.status_code in RETRYABLE_STATUS:
            return SendResult(
                retry=True,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                problem=f"HTTP {response.status_code}",
            )
        return _settle(response, len(payloads))

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()


def _settle(response: httpx.Response, count: int) -> SendResult:
    try:
        body = response.json()
    except ValueError:
        body = None
    counters = body if isinstance(body, dict) and "results" in body else None
    if counters is not None:
        rejected = int(counters.get("rejected", 0))
        return SendResult(
            retry=False,
            sent=int(counters.get("accepted", 0)),
            duplicates=int(counters.get("duplicates", 0)),
            rejected=rejected,
            problem=_first_rejection(counters["results"]) if rejected else None,
            problem_key="rejected event" if rejected else None,
        )
    if response.is_success:
        return SendResult(retry=False, sent=count)
    return SendResult(
        retry=False,
        rejected=count,
        problem=f"HTTP {response.status_code}: {_message(body)}",
        problem_key=f"HTTP {response.status_code}",
    )


def _first_rejection(results: Any) -> str | None:
    for result in results if isinstance(results, list) else []:
        if isinstance(result, dict) and result.get("status") == "rejected":
            return f"event {result.get('request_id') or result.get('revenue_id')} rejected: " + (
                _message({"error": result.get("error")})
            )
    return None


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)
    return str(error) if error else "no error message"
