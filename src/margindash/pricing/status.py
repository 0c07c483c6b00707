"""How healthy the price sync is: last success, 7-day success rate, staleness.

Read from `pricing_sync_runs`, so every process (and any monitor) sees the same answer.
A run counts as a success when the catalogue was fetched and confirmed: `success` (a new
snapshot) or `unchanged`. `held` is not a success: what is in force is no longer what the
source says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from margindash.db.tables import price_snapshots, pricing_sync_runs
from margindash.pricing.snapshots import HELD, SnapshotInfo, current_snapshot, get_snapshot_info

SUCCESSFUL = ("success", "unchanged")
STALE_AFTER = timedelta(hours=24)
RATE_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class SyncRun:
    """One attempt to sync the catalogue."""

    id: int
    started_at: datetime
    finished_at: datetime
    status: str
    error: str | None
    source: str
    triggered_by: str
    snapshot_id: int | None
    sha256: str | None
    model_count: int | None
    models_added: int | None
    models_removed: int | None
    models_repriced: int | None


@dataclass(frozen=True, slots=True)
class PricingStatus:
    """The sync's health at `now`."""

    now: datetime
    last_run: SyncRun | None
    last_success_at: datetime | None
    counts_7d: Mapping[str, int]  # runs of the last 7 days by status
    snapshot: SnapshotInfo | None
    held: SnapshotInfo | None  # the newest snapshot waiting for review, if any

    @property
    def runs_7d(self) -> int:
        return sum(self.counts_7d.values())

    @property
    def successes_7d(self) -> int:
        return sum(self.counts_7d.get(s, 0) for s in SUCCESSFUL)

    @property
    def failures_7d(self) -> int:
        return self.counts_7d.get("failed", 0)

    @property
    def success_rate_7d(self) -> float | None:
        """Successful runs as a percentage of the runs of the last 7 days (None: no runs)."""
        return round(100 * self.successes_7d / self.runs_7d, 2) if self.runs_7d else None

    @property
    def staleness(self) -> timedelta | None:
        """Time since the last successful sync (None: never)."""
        return None if self.last_success_at is None else self.now - self.last_success_at

    @property
    def stale(self) -> bool:
        return self.staleness is None or self.staleness >= STALE_AFTER


def _run(row: Any) -> SyncRun:
    return SyncRun(**{c.name: getattr(row, c.name) for c in pricing_sync_runs.c})


def last_success_at(conn: Connection) -> datetime | None:
    """When the last successful sync finished."""
    t = pricing_sync_runs
    value = conn.execute(
        select(func.max(t.c.finished_at)).where(t.c.status.in_(SUCCESSFUL))
    ).scalar_one()
    return _aware(value)


def last_success_started_at(conn: Connection) -> datetime | None:
    """When the last successful sync started (the scheduler's clock)."""
    t = pricing_sync_runs
    value = conn.execute(
        select(func.max(t.c.started_at)).where(t.c.status.in_(SUCCESSFUL))
    ).scalar_one()
    return _aware(value)


def _aware(value: datetime | None) -> datetime | None:
    # Aggregates bypass the column type, so SQLite hands back naive UTC or text.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def pricing_status(engine: Engine, *, now: datetime | None = None) -> PricingStatus:
    """The sync's health now."""
    now = now or datetime.now(UTC)
    t = pricing_sync_runs
    with engine.connect() as conn:
        last = conn.execute(select(t).order_by(t.c.started_at.desc(), t.c.id.desc())).first()
        counts: dict[str, int] = dict(
            conn.execute(
                select(t.c.status, func.count())
                .where(t.c.started_at > now - RATE_WINDOW, t.c.started_at <= now)
                .group_by(t.c.status)
            ).all()
        )
        snapshot = current_snapshot(conn)
        held = _newest_held(conn, after=snapshot.id if snapshot else 0)
        success_at = last_success_at(conn)
    return PricingStatus(
        now=now,
        last_run=_run(last) if last else None,
        last_success_at=success_at,
        counts_7d=counts,
        snapshot=snapshot,
        held=held,
    )


def _newest_held(conn: Connection, *, after: int) -> SnapshotInfo | None:
    held_id = conn.execute(
        select(func.max(price_snapshots.c.id)).where(
            price_snapshots.c.status == HELD, price_snapshots.c.id > after
        )
    ).scalar_one()
    return None if held_id is None else get_snapshot_info(conn, held_id)


def pricing_is_stale(engine: Engine, now: datetime) -> bool:
    """True when no sync has succeeded in the 24 hours before `now` (or none ever did)."""
    with engine.connect() as conn:
        success_at = last_success_at(conn)
    return success_at is None or now - success_at >= STALE_AFTER


def recent_runs(engine: Engine, *, limit: int = 20) -> list[SyncRun]:
    """The newest sync runs first."""
    t = pricing_sync_runs
    with engine.connect() as conn:
        rows = conn.execute(
            select(t).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit)
        ).all()
    return [_run(r) for r in rows]
