"""Changing an org's Stripe settings. Switching the booked mode (live ↔ test) re-books every
stored object in the same transaction, so the P&L never mixes the two modes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, select

from margindash.config import Settings
from margindash.db.tables import stripe_objects
from margindash.orgs.service import Org
from margindash.stripe_sync.booking import Booker
from margindash.stripe_sync.database import in_transaction
from margindash.stripe_sync.org_config import (
    StripeOrgConfig,
    booked_mode,
    check_org_config,
    save_org_config,
)


def configure_stripe(
    engine: Engine,
    *,
    settings: Settings,
    org: Org,
    webhook_secrets: Sequence[str] | None = None,
    mode: str | None = None,
) -> StripeOrgConfig:
    """Set the org's webhook secrets and/or booked mode (None leaves a setting as it is)."""
    check_org_config(webhook_secrets, mode)

    def work(conn: Connection) -> StripeOrgConfig:
        before = booked_mode(conn, settings, org.id)
        config = save_org_config(
            conn, engine, org_id=org.id, webhook_secrets=webhook_secrets, mode=mode
        )
        if booked_mode(conn, settings, org.id) != before:
            rebook_everything(conn, engine, settings=settings, org=org)
        return config

    return in_transaction(engine, work)


def rebook_everything(conn: Connection, engine: Engine, *, settings: Settings, org: Org) -> int:
    """Re-book every stored object of the org (both modes); returns entries changed."""
    rows = conn.execute(
        select(stripe_objects.c.livemode, stripe_objects.c.object_id).where(
            stripe_objects.c.org_id == org.id
        )
    ).all()
    booker = Booker(conn, engine, org, settings)
    changed = 0
    for livemode in (False, True):
        ids = [row.object_id for row in rows if bool(row.livemode) == livemode]
        changed += booker.rebook(livemode=livemode, object_ids=ids)
    return changed
