"""Applying Stripe objects: store their snapshots and re-book everything connected to them.

An event is applied in one transaction (snapshots, ledger entries, rollups and the event's status
change together): a failure leaves nothing half written and the raw event waits for a retry.
Anything that needs Stripe's API (invoice lines beyond the first page) happens before that
transaction, so it never holds the database while the network is slow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import stripe
from sqlalchemy import Connection, Engine, update

from margindash.config import Settings
from margindash.db.tables import stripe_events
from margindash.ledger.revenue import MissingFxRate
from margindash.ledger.writer import DatabaseUnavailable
from margindash.orgs.service import Org, get_org
from margindash.stripe_sync import client as api
from margindash.stripe_sync.amounts import API_VERSION
from margindash.stripe_sync.booking import Booker
from margindash.stripe_sync.database import in_transaction
from margindash.stripe_sync.events import (
    FAILED,
    HANDLED_TYPES,
    PROCESSED,
    StoredEvent,
    mark_failed,
    unapplied_events,
)
from margindash.stripe_sync.org_config import booked_mode
from margindash.stripe_sync.snapshots import (
    Snapshot,
    StripeDataError,
    connected,
    objects_of_customer,
    ref_id,
    save_snapshot,
    snapshot_of,
)

log = logging.getLogger(__name__)
# Problems an operator fixes (an FX rate, an API key) or Stripe's API being unreachable: the
# event is marked failed and retried; anything else is a bug and propagates.
RETRYABLE = (StripeDataError, MissingFxRate, stripe.StripeError)
PAYMENT_TYPES = frozenset(["charge", "refund", "dispute"])


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one event."""

    status: str  # processed, failed, duplicate, ignored, queued
    message: str | None = None


def snapshots_for_event(event: Mapping[str, Any]) -> list[Snapshot]:
    """The objects an event carries, as snapshots dated by the event."""
    seen_at = datetime.fromtimestamp(event["created"], UTC)
    obj = event["data"]["object"]
    livemode = bool(event["livemode"])
    snapshot = snapshot_of(obj, seen_at=seen_at, livemode=livemode)
    if snapshot is None:
        raise StripeDataError(f"{event['type']}: unexpected object {obj.get('object')!r}")
    found = [snapshot]
    payments = obj.get("payments") if snapshot.object_type == "invoice" else None
    if isinstance(payments, Mapping):
        for item in payments.get("data") or []:
            linked = snapshot_of(item, seen_at=seen_at, livemode=livemode)
            if linked is not None:
                found.append(linked)
    return found


def needs_api(snapshots: Sequence[Snapshot], settings: Settings) -> bool:
    """Whether applying these snapshots calls Stripe's API first (then it runs after replying).

    Without STRIPE_API_KEY nothing is fetched: an invoice with more lines than its event fails
    at once, saying so.
    """
    if not settings.stripe_api_key:
        return False
    return any(
        (snapshot.object_type == "invoice" and _has_more_lines(snapshot.payload))
        or _payment_intent(snapshot) is not None
        for snapshot in snapshots
    )


def _payment_intent(snapshot: Snapshot) -> str | None:
    """The payment intent of a charge, refund or dispute (it tells which invoice was paid)."""
    if snapshot.object_type not in PAYMENT_TYPES:
        return None
    return ref_id(snapshot.payload.get("payment_intent"))


def _has_more_lines(invoice: Mapping[str, Any]) -> bool:
    lines = invoice.get("lines")
    return isinstance(lines, Mapping) and bool(lines.get("has_more"))


def complete(snapshots: Sequence[Snapshot], client: stripe.StripeClient | None) -> list[Snapshot]:
    """Fetch what events leave out: lines past the first page, and which invoice a payment paid."""
    found: list[Snapshot] = []
    for snapshot in snapshots:
        if snapshot.object_type == "invoice" and _has_more_lines(snapshot.payload):
            if client is None:
                raise StripeDataError(
                    f"invoice {snapshot.object_id} has more lines than its event carries: set "
                    "STRIPE_API_KEY (a read-only key) so margindash can fetch them"
                )
            lines = {**snapshot.payload["lines"], "has_more": False}
            lines["data"] = api.invoice_lines(client, snapshot.object_id)
            snapshot = replace(snapshot, payload={**snapshot.payload, "lines": lines})
        found.append(snapshot)
        payment_intent = _payment_intent(snapshot)
        if client is not None and payment_intent is not None:
            for item in api.invoice_payments(client, payment_intent):
                linked = snapshot_of(item, seen_at=snapshot.seen_at, livemode=snapshot.livemode)
                if linked is not None:
                    found.append(linked)
    return found


def apply_snapshots(
    conn: Connection, engine: Engine, *, org: Org, settings: Settings, snapshots: Sequence[Snapshot]
) -> int:
    """Store snapshots (newest wins) and re-book all objects connected to them."""
    targets: dict[bool, set[str]] = {False: set(), True: set()}
    for snapshot in snapshots:
        save_snapshot(conn, org_id=org.id, snapshot=snapshot)
        targets[snapshot.livemode].add(snapshot.object_id)
        if snapshot.object_type == "customer":
            for livemode, object_id in objects_of_customer(
                conn, org_id=org.id, stripe_customer_id=snapshot.object_id
            ):
                targets[livemode].add(object_id)
    return rebook(conn, engine, org=org, settings=settings, targets=targets)


def rebook(
    conn: Connection,
    engine: Engine,
    *,
    org: Org,
    settings: Settings,
    targets: Mapping[bool, set[str]],
) -> int:
    """Re-book these objects and everything connected to them; returns entries changed."""
    booker = Booker(conn, engine, org, settings)
    changed = 0
    for livemode, ids in sorted(targets.items()):
        if ids:
            component = connected(conn, org_id=org.id, livemode=livemode, object_ids=ids)
            changed += booker.rebook(livemode=livemode, object_ids=component)
    return changed


def apply_objects(
    engine: Engine,
    *,
    org: Org,
    settings: Settings,
    snapshots: Sequence[Snapshot],
    after: Callable[[Connection], None] | None = None,
) -> int:
    """Apply snapshots in their own transaction; `after(conn)` runs last in the same one."""

    def work(conn: Connection) -> int:
        changed = apply_snapshots(conn, engine, org=org, settings=settings, snapshots=snapshots)
        if after is not None:
            after(conn)
        return changed

    return in_transaction(engine, work)


def process_event(
    engine: Engine,
    *,
    settings: Settings,
    org: Org,
    stored: StoredEvent,
    client: stripe.StripeClient | None = None,
) -> Outcome:
    """Apply one stored event; failures are recorded on the event, database errors raised."""
    event = orjson.loads(stored.payload)
    if event.get("type") not in HANDLED_TYPES:
        return Outcome("ignored")
    try:
        snapshots = complete(snapshots_for_event(event), client)

        def mark_processed(conn: Connection) -> None:
            conn.execute(
                update(stripe_events)
                .where(stripe_events.c.id == stored.row_id)
                .values(
                    status=PROCESSED,
                    processed_at=datetime.now(UTC),
                    attempts=stripe_events.c.attempts + 1,
                    last_error=None,
                )
            )

        apply_objects(engine, org=org, settings=settings, snapshots=snapshots, after=mark_processed)
    except RETRYABLE as exc:
        message = str(getattr(exc, "user_message", None) or exc)
        log.warning("stripe event %s not applied: %s", stored.event_id, message)
        mark_failed(engine, row_id=stored.row_id, error=message)
        return Outcome(FAILED, message)
    except DatabaseUnavailable as exc:
        try:
            mark_failed(engine, row_id=stored.row_id, error=str(exc))
        except DatabaseUnavailable:
            log.warning("could not record the failure of stripe event %s", stored.event_id)
        raise
    return Outcome(PROCESSED, _note(engine, settings, org, event))


def _note(engine: Engine, settings: Settings, org: Org, event: Mapping[str, Any]) -> str | None:
    version = str(event.get("api_version") or "")
    if version and not version.startswith(API_VERSION):
        log.warning(
            "stripe event %s has API version %s; margindash reads %s",
            event["id"],
            version,
            API_VERSION,
        )
    with engine.connect() as conn:
        mode = booked_mode(conn, settings, org.id)
    if (mode == "live") != bool(event.get("livemode")):
        kind = "live" if event.get("livemode") else "test"
        return f"{kind}-mode event stored; this org books {mode}-mode revenue"
    return None


def process_unapplied(
    engine: Engine,
    *,
    settings: Settings,
    org_id: str | None = None,
    client: stripe.StripeClient | None = None,
    limit: int = 500,
) -> dict[str, int]:
    """Apply events stored but not applied yet (the retry sweep); counts per outcome."""
    counts: dict[str, int] = {}
    orgs: dict[str, Org | None] = {}
    for stored in unapplied_events(engine, org_id=org_id, limit=limit):
        if stored.org_id not in orgs:
            orgs[stored.org_id] = get_org(engine, stored.org_id)
        org = orgs[stored.org_id]
        if org is None:
            continue
        outcome = process_event(engine, settings=settings, org=org, stored=stored, client=client)
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts
