"""Ingest usage events: check, price at event time, store once, and report per event."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, select

from margindash.config import Settings
from margindash.db.tables import usage_events
from margindash.ledger.events import CheckedEvent, EventRules, FieldError, InvalidEvent, check_event
from margindash.ledger.writer import EventRow, LedgerWriter, run_transaction, write_events
from margindash.orgs.service import Org
from margindash.pricing.service import Pricer, Quote


@dataclass(slots=True)
class EventResult:
    """What happened to one event of a request."""

    request_id: str | None
    status: str  # accepted | duplicate | rejected
    cost_nanos: int | None = None
    model: str | None = None
    provider: str | None = None
    priced: bool = False
    estimated: bool = False
    warnings: tuple[str, ...] = ()
    errors: Sequence[FieldError] = ()


@dataclass(slots=True)
class IngestReport:
    """Per-event results of one request, in request order, with counters."""

    results: list[EventResult]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def event_rules(settings: Settings) -> EventRules:
    """The acceptance rules configured for this deployment."""
    return EventRules(
        strict=settings.strict_token_counts,
        estimate_factor=settings.token_estimate_factor,
        max_age=timedelta(days=settings.max_event_age_days),
    )


class UsageIngestor:
    """Checks and prices events, then stores them through the group-commit writer."""

    def __init__(
        self,
        *,
        engine: Engine,
        pricer: Pricer,
        rules: EventRules,
        writer: LedgerWriter | None = None,
    ):
        self.engine = engine
        self.pricer = pricer
        self.rules = rules
        self.writer = writer

    def prepare(
        self, *, org: Org, raw_events: Sequence[Any], now: datetime | None = None
    ) -> tuple[list[EventResult], list[EventRow], list[int]]:
        """Check and price each event. Returns results, rows to store and their result indexes."""
        now = now or datetime.now(UTC)
        results: list[EventResult] = []
        rows: list[EventRow] = []
        row_results: list[int] = []
        price = self.pricer.for_org(org.id).price
        for raw in raw_events:
            try:
                event = check_event(raw, rules=self.rules, now=now)
            except InvalidEvent as exc:
                request_id = raw.get("request_id") if isinstance(raw, dict) else None
                results.append(
                    EventResult(
                        request_id if isinstance(request_id, str) else None,
                        "rejected",
                        errors=exc.errors,
                    )
                )
                continue
            quote = price(event.model_name, event.provider, event.tokens, event.occurred_at)
            row_results.append(len(results))
            results.append(_result(event, quote))
            rows.append(event_row(org, event, quote, received_at=now))
        return results, rows, row_results

    async def ingest(self, *, org: Org, raw_events: Sequence[Any]) -> IngestReport:
        """Store events through the writer; duplicates of stored request ids are not stored."""
        results, rows, row_results = self.prepare(org=org, raw_events=raw_events)
        if rows:
            assert self.writer is not None
            stored = await self.writer.write(rows)
            duplicates = _mark_duplicates(results, row_results, stored)
            if duplicates:  # rare (retries): read in a worker thread, off the event loop
                await asyncio.to_thread(self._report_as_stored, org, duplicates)
        return IngestReport(results)

    def ingest_now(self, *, org: Org, raw_events: Sequence[Any]) -> IngestReport:
        """Store events in a transaction of the caller's thread (CLI, demo, tests)."""
        results, rows, row_results = self.prepare(org=org, raw_events=raw_events)
        if rows:
            stored = run_transaction(self.engine, lambda c: write_events(c, self.engine, rows))
            duplicates = _mark_duplicates(results, row_results, stored)
            if duplicates:
                self._report_as_stored(org, duplicates)
        return IngestReport(results)

    def _report_as_stored(self, org: Org, duplicates: list[EventResult]) -> None:
        """A duplicate reports the event stored under its id (model, cost), not its own quote:
        a client adding up `cost_usd` over the results then counts every event once."""
        stored = self._stored(org, {result.request_id or "" for result in duplicates})
        _as_stored(duplicates, stored)

    def _stored(self, org: Org, request_ids: set[str]) -> dict[str, Any]:
        """The stored events among `request_ids`, by id: what their results report."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    usage_events.c.request_id,
                    usage_events.c.model,
                    usage_events.c.provider,
                    usage_events.c.cost_nanos,
                    usage_events.c.estimated,
                ).where(usage_events.c.org_id == org.id, usage_events.c.request_id.in_(request_ids))
            ).all()
        return {row.request_id: row for row in rows}

    def dry_run(self, *, org: Org, raw_events: Sequence[Any]) -> IngestReport:
        """Check and price without storing anything; an id stored already, or earlier in the
        request, is a `duplicate`, as ingesting would answer."""
        results, rows, row_results = self.prepare(org=org, raw_events=raw_events)
        stored = self._stored(org, {row.params[1] for row in rows}) if rows else {}
        seen: set[str] = set()
        new: list[bool] = []
        for row in rows:
            request_id = row.params[1]
            new.append(request_id not in stored and request_id not in seen)
            seen.add(request_id)
        _as_stored(_mark_duplicates(results, row_results, new), stored)
        return IngestReport(results)


def _mark_duplicates(
    results: list[EventResult], row_results: list[int], stored: list[bool]
) -> list[EventResult]:
    """Mark the results of rows that were not stored; returns them."""
    duplicates = []
    for index, was_stored in zip(row_results, stored, strict=True):
        if not was_stored:
            result = results[index]
            result.status = "duplicate"
            duplicates.append(result)
    return duplicates


def _as_stored(duplicates: list[EventResult], stored: dict[str, Any]) -> None:
    for result in duplicates:
        row = stored.get(result.request_id or "")
        if row is not None:  # else the first copy is in this request (a dry run stores none)
            result.model, result.provider = row.model, row.provider
            result.cost_nanos, result.priced = row.cost_nanos, row.cost_nanos is not None
            result.estimated, result.warnings = row.estimated, ()


def _result(event: CheckedEvent, quote: Quote) -> EventResult:
    # Positional: once per event, and keyword arguments cost a third more here.
    cost = quote.cost_nanos
    return EventResult(
        event.request_id,
        "accepted",
        cost,
        quote.model,
        quote.provider,
        cost is not None,
        event.estimated,
        event.warnings + quote.warnings,
    )


def event_row(org: Org, event: CheckedEvent, quote: Quote, *, received_at: datetime) -> EventRow:
    """The stored form of an event."""
    at = event.occurred_at
    day = at.date() if org.timezone == "UTC" else at.astimezone(org.zone).date()
    tokens = event.tokens
    return EventRow(
        (
            org.id,
            event.request_id,
            event.customer_id,
            event.feature,
            event.model_name,
            quote.model,
            quote.provider,
            at,
            day,
            tokens.prompt,
            tokens.completion,
            tokens.cached,
            tokens.cache_write,
            tokens.reasoning,
            quote.cost_nanos,
            quote.price_source,
            quote.price_ref,
            event.estimated,
            event.revenue_cents,
            event.metadata,
            received_at,
        )
    )


def stored_event(engine: Engine, *, org_id: str, request_id: str) -> Row[Any] | None:
    """An org's stored usage event (a `usage_events` row), or None."""
    with engine.connect() as conn:
        return conn.execute(
            select(usage_events).where(
                usage_events.c.org_id == org_id, usage_events.c.request_id == request_id
            )
        ).first()
