"""The catalogue's history in the database: snapshots, their price rows and what each changed.

Snapshots are never rewritten: a sync adds one only when the catalogue changed, and an accepted
snapshot is in force from its `effective_from` until the next one, so events keep the price
that was in force when they happened.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from genai_prices import types as gp
from sqlalchemy import Connection, Engine, bindparam, delete, select, text, update

from margindash.db.tables import model_prices, price_changes, price_snapshots
from margindash.pricing.payload import (
    CataloguePayload,
    bundled_label,
    bundled_payload,
    load_payload,
)
from margindash.pricing.rows import (
    ModelChange,
    ModelKey,
    PriceRow,
    by_model,
    catalogue_rows,
    diff_catalogues,
)

ACCEPTED = "accepted"
HELD = "held"
# Any constant works: it only has to be the same in every process touching the catalogue.
_CATALOGUE_LOCK = 0x6D617267696E
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SnapshotNotFound(LookupError):
    """No snapshot with that id."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A snapshot without its payload."""

    id: int
    source: str
    sha256: str
    status: str
    fetched_at: datetime
    checked_at: datetime
    effective_from: datetime | None
    provider_count: int
    model_count: int
    review_reasons: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None

    @property
    def label(self) -> str:
        """How priced events name it in `price_source`."""
        return f"genai-prices snapshot {self.id}"

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.effective_from or _EPOCH, self.id)


_INFO_COLUMNS = [c for c in price_snapshots.c if c.name != "payload"]


def _info(row: Any) -> SnapshotInfo:
    return SnapshotInfo(**{c.name: getattr(row, c.name) for c in _INFO_COLUMNS})


def lock_catalogue(conn: Connection) -> None:
    """Serialise catalogue writers until the transaction ends (SQLite has one writer anyway)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CATALOGUE_LOCK})


def accepted_snapshots(conn: Connection) -> list[SnapshotInfo]:
    """Accepted snapshots in the order they took effect (the seed first)."""
    rows = conn.execute(select(*_INFO_COLUMNS).where(price_snapshots.c.status == ACCEPTED)).all()
    return sorted((_info(r) for r in rows), key=lambda s: s.order)


def current_snapshot(conn: Connection) -> SnapshotInfo | None:
    """The accepted snapshot in force now, or None before the catalogue is seeded."""
    accepted = accepted_snapshots(conn)
    return accepted[-1] if accepted else None


def get_snapshot_info(conn: Connection, snapshot_id: int) -> SnapshotInfo:
    row = conn.execute(select(*_INFO_COLUMNS).where(price_snapshots.c.id == snapshot_id)).first()
    if row is None:
        raise SnapshotNotFound(f"no price snapshot {snapshot_id}")
    return _info(row)


def list_snapshots(engine: Engine, *, limit: int = 20) -> list[SnapshotInfo]:
    """The newest snapshots first, accepted or held."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_INFO_COLUMNS).order_by(price_snapshots.c.id.desc()).limit(limit)
        ).all()
    return [_info(r) for r in rows]


def held_with_sha(conn: Connection, sha256: str, *, newer_than: int) -> SnapshotInfo | None:
    """A held snapshot of exactly this content, stored after snapshot `newer_than`."""
    row = conn.execute(
        select(*_INFO_COLUMNS)
        .where(
            price_snapshots.c.sha256 == sha256,
            price_snapshots.c.status == HELD,
            price_snapshots.c.id > newer_than,
        )
        .order_by(price_snapshots.c.id.desc())
    ).first()
    return None if row is None else _info(row)


def snapshot_rows(conn: Connection, snapshot_id: int) -> list[PriceRow]:
    """Every price row of a snapshot."""
    rows = conn.execute(select(model_prices).where(model_prices.c.snapshot_id == snapshot_id))
    return [PriceRow.from_db(r) for r in rows]


def row_dates(conn: Connection, snapshot_id: int) -> dict[tuple[Any, ...], datetime | None]:
    """`since` of each row of a snapshot, by (provider, model, starts_on, time_window)."""
    t = model_prices
    rows = conn.execute(
        select(t.c.provider, t.c.model, t.c.starts_on, t.c.time_window, t.c.since).where(
            t.c.snapshot_id == snapshot_id
        )
    )
    return {(r.provider, r.model, r.starts_on, r.time_window): r.since for r in rows}


def snapshot_providers(conn: Connection, snapshot_id: int) -> list[gp.Provider]:
    """The genai-prices providers of a stored snapshot."""
    payload = conn.execute(
        select(price_snapshots.c.payload).where(price_snapshots.c.id == snapshot_id)
    ).scalar_one()
    return load_payload(payload)


def _since(
    rows: Sequence[PriceRow],
    previous: Sequence[PriceRow],
    previous_since: dict[tuple[Any, ...], datetime | None],
    effective_from: datetime | None,
) -> list[datetime | None]:
    # A price unchanged since the previous snapshot keeps the date it first took effect.
    terms = {(r.provider, r.model, r.starts_on, r.time_window): r.price_terms() for r in previous}
    dates = []
    for row in rows:
        key = (row.provider, row.model, row.starts_on, row.time_window)
        same = key in terms and terms[key] == row.price_terms()
        dates.append(previous_since.get(key) if same else effective_from)
    return dates


def _insert_rows(
    conn: Connection, snapshot_id: int, rows: Sequence[PriceRow], since: Sequence[datetime | None]
) -> None:
    if rows:
        conn.execute(
            model_prices.insert(),
            [
                {**row.db_values(), "snapshot_id": snapshot_id, "since": when}
                for row, when in zip(rows, since, strict=True)
            ],
        )


def record_changes(conn: Connection, snapshot_id: int, changes: Sequence[ModelChange]) -> None:
    """Replace the recorded changes of a snapshot."""
    conn.execute(delete(price_changes).where(price_changes.c.snapshot_id == snapshot_id))
    if changes:
        conn.execute(
            price_changes.insert(),
            [
                {
                    "snapshot_id": snapshot_id,
                    "provider": c.provider,
                    "model": c.model,
                    "change": c.change,
                    "old_prices": _rows_json(c.old),
                    "new_prices": _rows_json(c.new),
                }
                for c in changes
            ],
        )


def _rows_json(rows: Sequence[PriceRow]) -> str | None:
    return json.dumps([r.as_json() for r in rows]) if rows else None


def find_snapshot(engine: Engine, snapshot_id: int) -> SnapshotInfo:
    """A stored snapshot's summary; raises `SnapshotNotFound`."""
    with engine.connect() as conn:
        return get_snapshot_info(conn, snapshot_id)


def snapshot_changes(engine: Engine, snapshot_id: int) -> list[ModelChange]:
    """What a snapshot changed against the one in force before it."""
    with engine.connect() as conn:
        get_snapshot_info(conn, snapshot_id)
        rows = conn.execute(
            select(price_changes)
            .where(price_changes.c.snapshot_id == snapshot_id)
            .order_by(price_changes.c.provider, price_changes.c.model)
        ).all()
    return [
        ModelChange(
            r.provider,
            r.model,
            r.change,
            _rows_from_json((r.provider, r.model), r.old_prices),
            _rows_from_json((r.provider, r.model), r.new_prices),
        )
        for r in rows
    ]


def _rows_from_json(key: ModelKey, text_value: str | None) -> tuple[PriceRow, ...]:
    if not text_value:
        return ()
    return tuple(PriceRow.from_json(key, i, body) for i, body in enumerate(json.loads(text_value)))


def store_snapshot(
    conn: Connection,
    *,
    payload: CataloguePayload,
    rows: Sequence[PriceRow],
    source: str,
    fetched_at: datetime,
    previous: SnapshotInfo | None,
    changes: Sequence[ModelChange],
    held_for: str | None = None,
) -> int:
    """Store a catalogue: in force from `fetched_at`, or held for review when `held_for`."""
    accepted = held_for is None
    effective_from = None
    if accepted and previous is not None:
        effective_from = max(fetched_at, previous.effective_from or fetched_at)
    snapshot_id = int(
        conn.execute(
            price_snapshots.insert().values(
                source=source[:1024],
                sha256=payload.sha256,
                status=ACCEPTED if accepted else HELD,
                fetched_at=fetched_at,
                checked_at=fetched_at,
                effective_from=effective_from,
                provider_count=len(payload.providers),
                model_count=payload.model_count,
                payload=payload.compressed(),
                review_reasons=held_for,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )
    since: list[datetime | None] = [None] * len(rows)
    if accepted and previous is not None:
        old = snapshot_rows(conn, previous.id)
        since = _since(rows, old, row_dates(conn, previous.id), effective_from)
    _insert_rows(conn, snapshot_id, rows, since)
    record_changes(conn, snapshot_id, changes)
    return snapshot_id


def seed(conn: Connection, *, now: datetime) -> int:
    """Store the data bundled with genai-prices as the first snapshot, in force since forever."""
    payload = bundled_payload()
    return store_snapshot(
        conn,
        payload=payload,
        rows=catalogue_rows(payload.providers),
        source=bundled_label(),
        fetched_at=now,
        previous=None,
        changes=(),
    )


def ensure_seeded(engine: Engine, *, now: datetime | None = None) -> None:
    """Seed the catalogue from the bundled data unless a snapshot exists already."""
    with engine.connect() as conn:
        if conn.execute(select(price_snapshots.c.id).limit(1)).first() is not None:
            return
    with engine.begin() as conn:
        lock_catalogue(conn)
        if conn.execute(select(price_snapshots.c.id).limit(1)).first() is None:
            seed(conn, now=now or datetime.now(UTC))


def mark_checked(conn: Connection, snapshot_id: int, at: datetime) -> None:
    """A sync found the catalogue unchanged at `at`."""
    conn.execute(
        update(price_snapshots).where(price_snapshots.c.id == snapshot_id).values(checked_at=at)
    )


def approve_snapshot(
    engine: Engine,
    *,
    snapshot_id: int,
    reviewed_by: str,
    effective_from: datetime | None = None,
    now: datetime | None = None,
) -> SnapshotInfo:
    """Put a held snapshot in force, from now or from a date after the one in force began."""
    now = now or datetime.now(UTC)
    effective = effective_from or now
    with engine.begin() as conn:
        lock_catalogue(conn)
        held = get_snapshot_info(conn, snapshot_id)
        if held.status != HELD:
            raise ValueError(f"snapshot {snapshot_id} is not held for review")
        current = current_snapshot(conn)
        if effective > now:
            raise ValueError("effective_from: must not be in the future")
        if current is not None and current.effective_from and effective < current.effective_from:
            raise ValueError(
                "effective_from: must not be before the snapshot in force "
                f"({current.id}, from {current.effective_from:%Y-%m-%d %H:%M} UTC)"
            )
        _accept_held(conn, held, current, effective)
        conn.execute(
            update(price_snapshots)
            .where(price_snapshots.c.id == snapshot_id)
            .values(
                status=ACCEPTED,
                effective_from=effective,
                reviewed_by=reviewed_by,
                reviewed_at=now,
            )
        )
        return get_snapshot_info(conn, snapshot_id)


def _accept_held(
    conn: Connection, held: SnapshotInfo, current: SnapshotInfo | None, effective: datetime
) -> None:
    rows = snapshot_rows(conn, held.id)
    old = snapshot_rows(conn, current.id) if current else []
    since = _since(rows, old, row_dates(conn, current.id) if current else {}, effective)
    t = model_prices
    conn.execute(
        update(t)
        .where(
            t.c.snapshot_id == held.id,
            t.c.provider == bindparam("b_provider"),
            t.c.model == bindparam("b_model"),
            t.c.position == bindparam("b_position"),
        )
        .values(since=bindparam("b_since")),
        [
            {"b_provider": r.provider, "b_model": r.model, "b_position": r.position, "b_since": t}
            for r, t in zip(rows, since, strict=True)
        ],
    )
    record_changes(conn, held.id, diff_catalogues(by_model(old), by_model(rows)))
