"""Raw Stripe events: stored once per (org, event id) before anything else, kept for audit and
replay, with the outcome of the last attempt to apply them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from margindash.db.engine import upsert
from margindash.db.tables import stripe_events
from margindash.stripe_sync.amounts import is_stripe_timestamp
from margindash.stripe_sync.database import in_transaction

# Events that change revenue or attribution. `invoice.payment_succeeded` is left out on
# purpose: it fires for the same payment as `invoice.paid`.
HANDLED_TYPES = frozenset(
    [
        "invoice.paid",
        "invoice_payment.paid",
        "credit_note.created",
        "credit_note.updated",
        "credit_note.voided",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.succeeded",
        "charge.captured",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "customer.created",
        "customer.updated",
    ]
)
PENDING, PROCESSED, FAILED = "pending", "processed", "failed"


class InvalidStripeEvent(ValueError):
    """A verified body that is not a Stripe event."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A raw event row: where it is and whether it still needs applying."""

    row_id: int
    org_id: str
    event_id: str
    type: str
    status: str
    new: bool
    payload: str


def check_event(event: Any) -> Mapping[str, Any]:
    """The event if it has the fields every Stripe event has; raises InvalidStripeEvent."""
    if not isinstance(event, Mapping) or event.get("object") != "event":
        raise InvalidStripeEvent("the body is not a Stripe event (`object` must be `event`)")
    problems = []
    if not isinstance(event.get("id"), str) or not event["id"].startswith("evt_"):
        problems.append("`id` must be an evt_ id")
    if not isinstance(event.get("type"), str) or not event["type"]:
        problems.append("`type` missing")
    if not is_stripe_timestamp(event.get("created")):
        problems.append("`created` must be a Unix timestamp from 1970 to 9998")
    if not isinstance(event.get("livemode"), bool):
        problems.append("`livemode` missing")
    data = event.get("data")
    if not isinstance(data, Mapping) or not isinstance(data.get("object"), Mapping):
        problems.append("`data.object` missing")
    if problems:
        raise InvalidStripeEvent("invalid Stripe event: " + "; ".join(problems))
    return event


def store_event(
    engine: Engine, *, org_id: str, event: Mapping[str, Any], payload: str
) -> StoredEvent:
    """Store the raw event once (unique on its id); returns the row, new or already there."""
    obj = event["data"]["object"]
    values = {
        "org_id": org_id,
        "event_id": event["id"],
        "type": event["type"],
        "livemode": event["livemode"],
        "api_version": str(event.get("api_version") or "")[:64] or None,
        "object_id": str(obj.get("id") or "")[:255] or None,
        "created_at": datetime.fromtimestamp(event["created"], UTC),
        "received_at": datetime.now(UTC),
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
    }

    def work(conn: Connection) -> StoredEvent:
        stmt = (
            upsert(engine, stripe_events)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["org_id", "event_id"])
            .returning(stripe_events.c.id)
        )
        row_id = conn.execute(stmt).scalar()
        if row_id is not None:
            return StoredEvent(row_id, org_id, event["id"], event["type"], PENDING, True, payload)
        row = conn.execute(
            select(stripe_events.c.id, stripe_events.c.status, stripe_events.c.payload).where(
                stripe_events.c.org_id == org_id, stripe_events.c.event_id == event["id"]
            )
        ).one()
        return StoredEvent(
            row.id, org_id, event["id"], event["type"], row.status, False, row.payload
        )

    return in_transaction(engine, work)


def mark_failed(engine: Engine, *, row_id: int, error: str) -> None:
    """Record why applying an event failed (it stays in line for the next retry)."""

    def work(conn: Connection) -> None:
        conn.execute(
            update(stripe_events)
            .where(stripe_events.c.id == row_id, stripe_events.c.status != PROCESSED)
            .values(
                status=FAILED,
                attempts=stripe_events.c.attempts + 1,
                last_error=error[:2000],
            )
        )

    in_transaction(engine, work)


def unapplied_events(
    engine: Engine, *, org_id: str | None = None, limit: int = 500
) -> list[StoredEvent]:
    """Events stored but not applied yet: the least tried first, then the oldest."""
    query = (
        select(stripe_events)
        .where(stripe_events.c.status.in_((PENDING, FAILED)))
        .order_by(stripe_events.c.attempts, stripe_events.c.created_at, stripe_events.c.id)
        .limit(limit)
    )
    if org_id is not None:
        query = query.where(stripe_events.c.org_id == org_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_stored(row) for row in rows]


def all_events(
    engine: Engine, *, org_id: str, after_id: int = 0, limit: int = 500
) -> list[StoredEvent]:
    """Every stored event of an org in the order received (for `stripe replay --all`)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(stripe_events)
            .where(stripe_events.c.org_id == org_id, stripe_events.c.id > after_id)
            .order_by(stripe_events.c.id)
            .limit(limit)
        ).all()
    return [_stored(row) for row in rows]


def recent_events(
    engine: Engine, *, org_id: str, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest events of an org (for audit): id, type, mode, status, error."""
    query = (
        select(
            stripe_events.c.event_id,
            stripe_events.c.type,
            stripe_events.c.livemode,
            stripe_events.c.api_version,
            stripe_events.c.object_id,
            stripe_events.c.created_at,
            stripe_events.c.received_at,
            stripe_events.c.status,
            stripe_events.c.attempts,
            stripe_events.c.last_error,
        )
        .where(stripe_events.c.org_id == org_id)
        .order_by(stripe_events.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(stripe_events.c.status == status)
    with engine.connect() as conn:
        # Column names are str subclasses, which orjson refuses as keys.
        return [{str(k): v for k, v in row._mapping.items()} for row in conn.execute(query)]


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(row.id, row.org_id, row.event_id, row.type, row.status, False, row.payload)
