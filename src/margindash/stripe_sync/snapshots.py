"""The newest known state of each Stripe object, whatever order webhooks and backfill bring it in.

Stripe retries events for days and does not order them, and a backfill may read an object after
a newer event about it. A snapshot replaces the stored one only if its status is at least as
final (`rank`) and, at the same rank, not older (`seen_at`): a refund that succeeded never goes
back to pending because the `refund.created` event arrived last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from margindash.db.tables import stripe_objects, stripe_refs

# How final each status is: a snapshot never replaces one of a higher rank.
_RANKS: dict[str, dict[str, int]] = {
    "invoice": {"draft": 0, "open": 1, "paid": 2, "uncollectible": 2, "void": 2},
    "invoice_payment": {"open": 0, "paid": 1, "canceled": 1},
    "credit_note": {"issued": 0, "void": 1},
    "refund": {"pending": 0, "requires_action": 0, "succeeded": 1, "failed": 2, "canceled": 2},
    "charge": {"pending": 0, "succeeded": 1, "failed": 1},
    "dispute": {"won": 1, "lost": 1, "warning_closed": 1, "prevented": 1},
    "customer": {},
}
OBJECT_TYPES = frozenset(_RANKS)
# A connected group of objects (one invoice, its payments, refunds, credit notes) is small; the
# cap only stops a pathological account from turning one event into a full re-booking.
_MAX_COMPONENT = 20_000


class StripeDataError(ValueError):
    """A Stripe object lacks something revenue needs; its event is kept and marked failed."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One Stripe object as seen at `seen_at`, with the ids it refers to."""

    object_type: str
    object_id: str
    livemode: bool
    payload: dict[str, Any]
    seen_at: datetime
    rank: int
    customer_ref: str | None
    refs: frozenset[str]


def ref_id(value: Any) -> str | None:
    """The id of an expandable field: a string id, or an expanded object's `id`."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def snapshot_of(
    obj: Mapping[str, Any], *, seen_at: datetime, livemode: bool | None = None
) -> Snapshot | None:
    """A snapshot of a Stripe object, or None for kinds revenue does not depend on.

    Refunds carry no `livemode`: theirs is the event's (or the API key's), given as `livemode`.
    """
    kind = obj.get("object")
    if kind not in _RANKS:
        return None
    object_id = obj.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise StripeDataError(f"a Stripe {kind} without an id")
    mode = obj.get("livemode")
    if not isinstance(mode, bool):
        if livemode is None:
            raise StripeDataError(f"{object_id}: `livemode` unknown")
        mode = livemode
    status = str(obj.get("status") or "")
    payload = dict(obj)
    return Snapshot(
        object_type=str(kind),
        object_id=object_id,
        livemode=mode,
        payload=payload,
        seen_at=seen_at,
        rank=_RANKS[str(kind)].get(status, 0),
        customer_ref=object_id if kind == "customer" else ref_id(obj.get("customer")),
        refs=frozenset(_refs(str(kind), payload)),
    )


def _refs(kind: str, obj: Mapping[str, Any]) -> set[str]:
    found: list[str | None] = []
    if kind == "invoice_payment":
        payment = obj.get("payment") or {}
        found += [
            ref_id(obj.get("invoice")),
            ref_id(payment.get("charge")),
            ref_id(payment.get("payment_intent")),
        ]
    elif kind == "credit_note":
        found.append(ref_id(obj.get("invoice")))
        found += [ref_id(r.get("refund")) for r in obj.get("refunds") or [] if isinstance(r, dict)]
    elif kind in ("refund", "dispute"):
        found += [ref_id(obj.get("charge")), ref_id(obj.get("payment_intent"))]
    elif kind == "charge":
        found.append(ref_id(obj.get("payment_intent")))
    return {ref for ref in found if ref}


def save_snapshot(conn: Connection, *, org_id: str, snapshot: Snapshot) -> bool:
    """Store the snapshot unless the stored one is newer; True when it was stored."""
    key = (
        (stripe_objects.c.org_id == org_id)
        & (stripe_objects.c.livemode == snapshot.livemode)
        & (stripe_objects.c.object_id == snapshot.object_id)
    )
    stored = conn.execute(
        select(stripe_objects.c.rank, stripe_objects.c.seen_at, stripe_objects.c.closed_at)
        .where(key)
        .with_for_update()
    ).first()
    now = datetime.now(UTC)
    values = {
        "object_type": snapshot.object_type,
        "customer_ref": snapshot.customer_ref,
        "payload": orjson.dumps(snapshot.payload).decode(),
        "seen_at": snapshot.seen_at,
        "rank": snapshot.rank,
        "updated_at": now,
    }
    closed_at = snapshot.seen_at if snapshot.rank > 0 else None
    if stored is None:
        conn.execute(
            insert(stripe_objects).values(
                org_id=org_id,
                livemode=snapshot.livemode,
                object_id=snapshot.object_id,
                closed_at=closed_at,
                **values,
            )
        )
    else:
        # When an object first reached its final status is its date (a lost dispute), even if
        # the event saying so arrives after a later one.
        if closed_at is not None and stored.rank == snapshot.rank and stored.closed_at:
            closed_at = min(closed_at, stored.closed_at)
        if (snapshot.rank, snapshot.seen_at) < (stored.rank, stored.seen_at):
            if stored.rank == snapshot.rank and closed_at not in (None, stored.closed_at):
                conn.execute(update(stripe_objects).where(key).values(closed_at=closed_at))
            return False
        conn.execute(update(stripe_objects).where(key).values(closed_at=closed_at, **values))
    _replace_refs(conn, org_id, snapshot)
    return True


def _replace_refs(conn: Connection, org_id: str, snapshot: Snapshot) -> None:
    conn.execute(
        delete(stripe_refs).where(
            stripe_refs.c.org_id == org_id,
            stripe_refs.c.livemode == snapshot.livemode,
            stripe_refs.c.object_id == snapshot.object_id,
        )
    )
    if snapshot.refs:
        conn.execute(
            insert(stripe_refs),
            [
                {
                    "org_id": org_id,
                    "livemode": snapshot.livemode,
                    "object_id": snapshot.object_id,
                    "ref_id": ref,
                }
                for ref in sorted(snapshot.refs)
            ],
        )


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A stored snapshot: its payload and when its status became final."""

    object_type: str
    object_id: str
    livemode: bool
    payload: dict[str, Any]
    closed_at: datetime | None


def load_objects(
    conn: Connection, *, org_id: str, livemode: bool, object_ids: Iterable[str]
) -> dict[str, StoredObject]:
    """Stored snapshots by id (missing ids are left out)."""
    ids = sorted(set(object_ids))
    found: dict[str, StoredObject] = {}
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(
                stripe_objects.c.object_type,
                stripe_objects.c.object_id,
                stripe_objects.c.payload,
                stripe_objects.c.closed_at,
            ).where(
                stripe_objects.c.org_id == org_id,
                stripe_objects.c.livemode == livemode,
                stripe_objects.c.object_id.in_(ids[start : start + 500]),
            )
        )
        for row in rows:
            found[row.object_id] = StoredObject(
                row.object_type, row.object_id, livemode, orjson.loads(row.payload), row.closed_at
            )
    return found


def referring(
    conn: Connection, *, org_id: str, livemode: bool, ids: Iterable[str]
) -> dict[str, set[str]]:
    """For each id, the stored objects that refer to it."""
    wanted = sorted(set(ids))
    found: dict[str, set[str]] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(stripe_refs.c.ref_id, stripe_refs.c.object_id).where(
                stripe_refs.c.org_id == org_id,
                stripe_refs.c.livemode == livemode,
                stripe_refs.c.ref_id.in_(wanted[start : start + 500]),
            )
        )
        for row in rows:
            found.setdefault(row.ref_id, set()).add(row.object_id)
    return found


def connected(
    conn: Connection, *, org_id: str, livemode: bool, object_ids: Iterable[str]
) -> set[str]:
    """The objects connected to these through references, in either direction."""
    seen: set[str] = set()
    frontier = set(object_ids)
    while frontier and len(seen) < _MAX_COMPONENT:
        seen |= frontier
        keys = set(frontier)
        for stored in _refs_of(conn, org_id, livemode, frontier):
            keys.add(stored)
        referrers = referring(conn, org_id=org_id, livemode=livemode, ids=keys)
        reached = {obj for objs in referrers.values() for obj in objs}
        stored_keys = set(load_objects(conn, org_id=org_id, livemode=livemode, object_ids=keys))
        frontier = (reached | stored_keys) - seen
    return seen


def _refs_of(conn: Connection, org_id: str, livemode: bool, object_ids: set[str]) -> set[str]:
    ids = sorted(object_ids)
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        found.update(
            conn.execute(
                select(stripe_refs.c.ref_id).where(
                    stripe_refs.c.org_id == org_id,
                    stripe_refs.c.livemode == livemode,
                    stripe_refs.c.object_id.in_(ids[start : start + 500]),
                )
            ).scalars()
        )
    return found


def objects_of_customer(
    conn: Connection, *, org_id: str, stripe_customer_id: str
) -> set[tuple[bool, str]]:
    """Every stored object that names this Stripe customer, as (livemode, object id)."""
    rows = conn.execute(
        select(stripe_objects.c.livemode, stripe_objects.c.object_id).where(
            stripe_objects.c.org_id == org_id,
            stripe_objects.c.livemode.in_((False, True)),
            stripe_objects.c.customer_ref == stripe_customer_id,
        )
    )
    return {(bool(row.livemode), row.object_id) for row in rows}
