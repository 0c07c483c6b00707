"""Replay usage events from a file, into the database or to a running server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from margindash.acceptance.api_client import api_roots
from margindash.ledger.ingest import IngestReport, UsageIngestor
from margindash.orgs.service import Org


@dataclass(slots=True)
class ReplayTotals:
    """What happened to the replayed events."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unpriced: int = 0
    cost_nanos: int = 0
    problems: list[str] = field(default_factory=list)


def read_events(path: Path) -> list[Any]:
    """Events from a JSON array, a `{"events": [...]}` object, or JSON Lines."""
    raw = path.read_bytes()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        return list(data["events"])
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return [data]
    events = []
    for number, line in enumerate(raw.splitlines(), 1):
        if line.strip():
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
    return events


def _tally(totals: ReplayTotals, results: Sequence[dict[str, Any]]) -> None:
    for result in results:
        status = result["status"]
        if status == "accepted":
            totals.accepted += 1
            if result.get("cost_nanos") is None:
                totals.unpriced += 1
            else:
                totals.cost_nanos += result["cost_nanos"]
        elif status == "duplicate":
            totals.duplicates += 1
        else:
            totals.rejected += 1
            totals.problems.append(f"{result.get('request_id')}: {result.get('message')}")


def _from_report(report: IngestReport) -> list[dict[str, Any]]:
    return [
        {
            "status": r.status,
            "request_id": r.request_id,
            "cost_nanos": r.cost_nanos,
            "message": "; ".join(f"{e.field}: {e.message}" for e in r.errors),
        }
        for r in report.results
    ]


def replay_to_database(
    events: Sequence[Any],
    *,
    ingestor: UsageIngestor,
    org: Org,
    batch_size: int,
    on_progress: Callable[[int], None],
) -> ReplayTotals:
    """Ingest events straight into the database, batch by batch."""
    totals = ReplayTotals()
    for start in range(0, len(events), batch_size):
        chunk = events[start : start + batch_size]
        _tally(totals, _from_report(ingestor.ingest_now(org=org, raw_events=chunk)))
        on_progress(len(chunk))
    return totals


def replay_to_url(
    events: Sequence[Any],
    *,
    url: str,
    api_key: str,
    batch_size: int,
    on_progress: Callable[[int], None],
) -> ReplayTotals:
    """POST events to the server's `/v1/usage` (`url` with or without `/v1`) in batches."""
    totals = ReplayTotals()
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    base = api_roots(url)[1]
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for start in range(0, len(events), batch_size):
            chunk = events[start : start + batch_size]
            response = client.post("/usage", content=orjson.dumps({"events": chunk}))
            if response.status_code != 200:
                raise ValueError(f"server answered {response.status_code}: {response.text[:300]}")
            results = response.json()["results"]
            _tally(
                totals,
                [
                    {
                        "status": r["status"],
                        "request_id": r["request_id"],
                        "cost_nanos": None if r["cost_usd"] is None else _nanos(r["cost_usd"]),
                        "message": (r.get("error") or {}).get("message"),
                    }
                    for r in results
                ],
            )
            on_progress(len(chunk))
    return totals


def _nanos(amount: str) -> int:
    from decimal import Decimal

    from margindash.money import to_nanos

    return to_nanos(Decimal(amount))
