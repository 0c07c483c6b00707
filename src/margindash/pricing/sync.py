"""The price sync: fetch the catalogue, check it, store it when it changed, log every run.

A run ends in one of four states, each logged in `pricing_sync_runs`:
`success` (a new snapshot is in force), `unchanged` (the catalogue in force was confirmed),
`held` (stored, but a price jumped or a sentinel price differs: waits for review) and `failed`
(unreachable or not a catalogue). Nothing but `success` changes what prices new events, and no
run ever touches stored events.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from margindash.db.tables import pricing_sync_runs
from margindash.jobs.scheduler import Job, JobContext, register
from margindash.pricing.payload import (
    MAX_PAYLOAD_BYTES,
    CataloguePayload,
    InvalidCatalogue,
    bundled_payload,
    parse_payload,
)
from margindash.pricing.rows import ModelChange, by_model, catalogue_rows, diff_catalogues
from margindash.pricing.snapshots import (
    current_snapshot,
    ensure_seeded,
    held_with_sha,
    lock_catalogue,
    mark_checked,
    snapshot_rows,
    store_snapshot,
)
from margindash.pricing.status import last_success_started_at
from margindash.pricing.validation import review_reasons, summarise

log = logging.getLogger(__name__)
DEFAULT_MAX_JUMP = Decimal(10)
JOB_TICK = timedelta(hours=1)  # how often the scheduler asks whether a sync is due


class FetchFailed(RuntimeError):
    """The source could not be read."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync run did."""

    run_id: int
    status: str  # success | unchanged | failed | held
    error: str | None
    snapshot_id: int | None
    sha256: str | None
    model_count: int | None
    changes: tuple[ModelChange, ...] = field(default=())
    seconds: float = 0.0

    def count(self, change: str) -> int:
        return sum(1 for c in self.changes if c.change == change)


BUNDLED_SOURCE = "bundled"


def fetch_catalogue(source: str, *, timeout: float) -> bytes:
    """The catalogue at an http(s) URL, a file:// URL, a local path, or `bundled`: the data of
    the installed genai-prices (after an upgrade, on an install that cannot reach the URL)."""
    if source == BUNDLED_SOURCE:
        return bundled_payload().canonical
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return _download(source, timeout=timeout)
    path = Path(urlsplit(source).path if scheme == "file" else source)
    try:
        if path.stat().st_size > MAX_PAYLOAD_BYTES:
            raise FetchFailed(f"{path} is larger than a price list can be")
        return path.read_bytes()
    except OSError as exc:
        raise FetchFailed(f"cannot read {path}: {exc.strerror or exc}") from None


def _download(url: str, *, timeout: float) -> bytes:
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise FetchFailed(f"{url} answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_PAYLOAD_BYTES:
                    raise FetchFailed(f"{url} sent more than a price list can be")
            return bytes(body)
    except httpx.HTTPError as exc:
        raise FetchFailed(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from None


def sync_prices(
    engine: Engine,
    *,
    source: str,
    triggered_by: str,
    max_jump: Decimal = DEFAULT_MAX_JUMP,
    timeout: float = 30.0,
    now: datetime | None = None,
) -> SyncResult:
    """Fetch the catalogue from `source` and store it if it changed; the run is always logged.

    `now` is when the fetched catalogue is taken to be current (tests and backfills set it).
    """
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    ensure_seeded(engine, now=started)
    try:
        payload = parse_payload(fetch_catalogue(source, timeout=timeout))
    except (FetchFailed, InvalidCatalogue) as exc:
        log.warning("price sync from %s failed: %s", source, exc)
        return _log_failure(engine, source, triggered_by, started, str(exc), clock)
    try:
        with engine.begin() as conn:
            lock_catalogue(conn)
            result = _apply(conn, payload, source=source, at=started, max_jump=max_jump)
            run_id = _log_run(conn, result, source, triggered_by, started, clock)
    except SQLAlchemyError as exc:
        log.exception("price sync from %s could not be stored", source)
        return _log_failure(engine, source, triggered_by, started, f"database: {exc}", clock)
    log.info("price sync from %s: %s", source, result.status)
    return _finished(result, run_id, clock)


def _apply(
    conn: Connection, payload: CataloguePayload, *, source: str, at: datetime, max_jump: Decimal
) -> SyncResult:
    current = current_snapshot(conn)
    assert current is not None, "the catalogue is seeded before a sync"

    def result(status: str, snapshot_id: int, error: str | None = None) -> SyncResult:
        return SyncResult(0, status, error, snapshot_id, payload.sha256, payload.model_count)

    if payload.sha256 == current.sha256:
        mark_checked(conn, current.id, at)
        return result("unchanged", current.id)
    held = held_with_sha(conn, payload.sha256, newer_than=current.id)
    if held is not None:
        return result(
            "held", held.id, f"snapshot {held.id} is held for review: {held.review_reasons}"
        )
    rows = catalogue_rows(payload.providers)
    old, new = by_model(snapshot_rows(conn, current.id)), by_model(rows)
    changes = diff_catalogues(old, new)
    reasons = review_reasons(current=old, candidate=new, at=at, max_jump=max_jump)
    held_for = summarise(reasons) if reasons else None
    snapshot_id = store_snapshot(
        conn,
        payload=payload,
        rows=rows,
        source=source,
        fetched_at=at,
        previous=current,
        changes=changes,
        held_for=held_for,
    )
    if held_for:
        outcome = result("held", snapshot_id, f"held for review: {held_for}")
    else:
        outcome = result("success", snapshot_id)
    return replace(outcome, changes=tuple(changes))


def _log_run(
    conn: Connection,
    result: SyncResult,
    source: str,
    triggered_by: str,
    started: datetime,
    clock: float,
) -> int:
    finished = started + timedelta(seconds=time.perf_counter() - clock)
    changed = bool(result.changes)
    inserted = conn.execute(
        pricing_sync_runs.insert().values(
            started_at=started,
            finished_at=finished,
            status=result.status,
            error=result.error,
            source=source[:1024],
            triggered_by=triggered_by,
            snapshot_id=result.snapshot_id,
            sha256=result.sha256,
            model_count=result.model_count,
            models_added=result.count("added") if changed else None,
            models_removed=result.count("removed") if changed else None,
            models_repriced=result.count("repriced") if changed else None,
        )
    )
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def _log_failure(
    engine: Engine, source: str, triggered_by: str, started: datetime, error: str, clock: float
) -> SyncResult:
    result = SyncResult(
        run_id=0, status="failed", error=error, snapshot_id=None, sha256=None, model_count=None
    )
    with engine.begin() as conn:
        run_id = _log_run(conn, result, source, triggered_by, started, clock)
    return _finished(result, run_id, clock)


def _finished(result: SyncResult, run_id: int, clock: float) -> SyncResult:
    return replace(result, run_id=run_id, seconds=time.perf_counter() - clock)


def sync_is_due(engine: Engine, *, every: timedelta, now: datetime) -> bool:
    """Whether the last successful sync is old enough for the next one.

    The job is checked every `JOB_TICK`, so a sync is due a tick early rather than a tick late;
    after a failure the last success stays old, so the next tick tries again.
    """
    with engine.connect() as conn:
        last = last_success_started_at(conn)
    return last is None or now - last >= every - JOB_TICK


def run_scheduled_sync(context: JobContext) -> None:
    """The scheduler's job: sync when due (`MARGINDASH_PRICING_SYNC_HOURS`; 0: never)."""
    settings = context.settings
    if not settings.pricing_sync_hours:
        return
    now = datetime.now(UTC)
    if not sync_is_due(context.engine, every=timedelta(hours=settings.pricing_sync_hours), now=now):
        return
    sync_prices(
        context.engine,
        source=settings.pricing_url,
        triggered_by="schedule",
        max_jump=settings.pricing_max_jump,
        timeout=settings.pricing_fetch_timeout_seconds,
    )


register(Job("pricing_sync", JOB_TICK, run_scheduled_sync))
