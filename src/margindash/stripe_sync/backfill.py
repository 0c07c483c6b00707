"""Backfill: read customers, paid invoices, credit notes and refunds from Stripe's API and apply
them exactly like webhook events, so running it again, or next to the webhooks, never counts
twice. It resumes where an interrupted run stopped (a cursor per resource, saved in the same
transaction as each object). The daily reconciliation job is a backfill of recent weeks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select
from stripe import StripeClient

from margindash.config import Settings
from margindash.db.engine import upsert
from margindash.db.tables import stripe_sync_state
from margindash.orgs.service import Org
from margindash.stripe_sync import client as api
from margindash.stripe_sync.client import key_livemode
from margindash.stripe_sync.processing import apply_objects, complete
from margindash.stripe_sync.snapshots import snapshot_of

# Customers first, so their metadata decides attribution when their invoices arrive.
RESOURCES = ("customers", "invoices", "credit_notes", "refunds")
Progress = Callable[[str, int], None]


@dataclass(slots=True)
class BackfillReport:
    """Objects read per resource, entries changed, and which resources resumed a cut-off run."""

    objects: dict[str, int] = field(default_factory=dict)
    changed_entries: int = 0
    resumed: list[str] = field(default_factory=list)


def backfill(
    engine: Engine,
    *,
    settings: Settings,
    org: Org,
    client: StripeClient,
    since: date,
    restart: bool = False,
    on_progress: Progress | None = None,
) -> BackfillReport:
    """Apply Stripe objects created since `since` (all customers); resumable and idempotent."""
    since_ts = int(datetime.combine(since, time(), tzinfo=org.zone).timestamp())
    report = BackfillReport()
    # Refunds carry no `livemode`: the key's mode is theirs (else the mode of what came before).
    livemode = key_livemode(settings.stripe_api_key)
    for resource in RESOURCES:
        name = f"backfill:{resource}"
        state = _load_state(engine, org.id, name)
        params: dict[str, Any] = {} if resource == "customers" else {"created": {"gte": since_ts}}
        if resource == "invoices":
            params["status"] = "paid"
        fresh = restart or state.get("since") != since.isoformat() or state.get("done", True)
        if not fresh and state.get("after"):
            params["starting_after"] = state["after"]
            report.resumed.append(resource)
        count = 0
        for obj in api.listing(client, resource, params):
            if livemode is None and isinstance(obj.get("livemode"), bool):
                livemode = obj["livemode"]
            report.changed_entries += _apply(
                engine, settings, org, client, obj, name, since, livemode
            )
            count += 1
            if on_progress is not None:
                on_progress(resource, count)
        report.objects[resource] = count
        with engine.begin() as conn:
            _save_state(conn, engine, org.id, name, since, after=None, done=True)
    return report


def _apply(
    engine: Engine,
    settings: Settings,
    org: Org,
    client: StripeClient,
    obj: dict[str, Any],
    name: str,
    since: date,
    livemode: bool | None,
) -> int:
    snapshot = snapshot_of(obj, seen_at=datetime.now(UTC), livemode=livemode)
    snapshots = complete([snapshot], client) if snapshot is not None else []

    def remember(conn: Connection) -> None:
        _save_state(conn, engine, org.id, name, since, after=str(obj["id"]), done=False)

    return apply_objects(engine, org=org, settings=settings, snapshots=snapshots, after=remember)


def _load_state(engine: Engine, org_id: str, name: str) -> dict[str, Any]:
    with engine.connect() as conn:
        value = conn.execute(
            select(stripe_sync_state.c.value).where(
                stripe_sync_state.c.org_id == org_id, stripe_sync_state.c.name == name
            )
        ).scalar()
    found: dict[str, Any] = orjson.loads(value) if value else {}
    return found


def _save_state(
    conn: Connection,
    engine: Engine,
    org_id: str,
    name: str,
    since: date,
    *,
    after: str | None,
    done: bool,
) -> None:
    value = orjson.dumps({"since": since.isoformat(), "after": after, "done": done}).decode()
    stmt = upsert(engine, stripe_sync_state).values(
        org_id=org_id, name=name, value=value, updated_at=datetime.now(UTC)
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["org_id", "name"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
    )
