"""Per-org Stripe settings: webhook signing secrets and which mode (live or test) is booked."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select

from margindash.config import Settings
from margindash.db.engine import upsert
from margindash.db.tables import stripe_org_settings
from margindash.orgs.service import Org, find_org

MODES = ("live", "test")
_SECRET = re.compile(r"^whsec_[A-Za-z0-9_+/=-]{8,200}$")


@dataclass(frozen=True, slots=True)
class StripeOrgConfig:
    """An org's own Stripe settings (empty: the environment's apply)."""

    webhook_secrets: tuple[str, ...] = ()
    mode: str | None = None


def split_secrets(value: str | None) -> list[str]:
    """Signing secrets from a comma-separated value (several while rotating)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def load_org_config(conn: Connection, org_id: str) -> StripeOrgConfig:
    """The org's stored Stripe settings."""
    row = conn.execute(
        select(stripe_org_settings).where(stripe_org_settings.c.org_id == org_id)
    ).first()
    if row is None:
        return StripeOrgConfig()
    return StripeOrgConfig(tuple(split_secrets(row.webhook_secrets)), row.mode)


def check_org_config(webhook_secrets: Sequence[str] | None, mode: str | None) -> None:
    """Raise ValueError naming the bad field of a settings change."""
    if webhook_secrets is not None:
        for secret in webhook_secrets:
            if not _SECRET.match(secret):
                raise ValueError(
                    "webhook_secrets: each secret is whsec_ and at least 8 more characters "
                    "(from Stripe)"
                )
        if len(webhook_secrets) > 5:
            raise ValueError("webhook_secrets: at most 5 secrets at once")
    if mode is not None and mode not in MODES:
        raise ValueError("mode: live or test")


def save_org_config(
    conn: Connection,
    engine: Engine,
    *,
    org_id: str,
    webhook_secrets: Sequence[str] | None = None,
    mode: str | None = None,
) -> StripeOrgConfig:
    """Store an org's webhook secrets and/or booked mode (None leaves a setting as it is)."""
    check_org_config(webhook_secrets, mode)
    current = load_org_config(conn, org_id)
    secrets = tuple(webhook_secrets) if webhook_secrets is not None else current.webhook_secrets
    new_mode = mode if mode is not None else current.mode
    stmt = upsert(engine, stripe_org_settings).values(
        org_id=org_id,
        webhook_secrets=",".join(secrets) or None,
        mode=new_mode,
        updated_at=datetime.now(UTC),
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["org_id"],
            set_={
                "webhook_secrets": stmt.excluded.webhook_secrets,
                "mode": stmt.excluded.mode,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )
    return StripeOrgConfig(secrets, new_mode)


def default_org(engine: Engine, settings: Settings) -> Org | None:
    """The org `POST /v1/stripe/webhook` books into: MARGINDASH_DEFAULT_ORG, else the oldest."""
    return find_org(engine, settings.default_org)


def webhook_secrets(engine: Engine, settings: Settings, org: Org) -> list[str]:
    """Secrets accepted for the org: its own, plus STRIPE_WEBHOOK_SECRET for the default org."""
    with engine.connect() as conn:
        secrets = list(load_org_config(conn, org.id).webhook_secrets)
    fallback = default_org(engine, settings)
    if fallback is not None and fallback.id == org.id:
        secrets += split_secrets(settings.stripe_webhook_secret)
    return list(dict.fromkeys(secrets))


def booked_mode(conn: Connection, settings: Settings, org_id: str) -> str:
    """The mode whose revenue the org books: its own setting, else MARGINDASH_STRIPE_MODE."""
    return load_org_config(conn, org_id).mode or settings.stripe_mode


def secret_hint(secret: str) -> str:
    """A secret shown without revealing it: `whsec_…c3f9`."""
    return f"whsec_…{secret[-4:]}"


@dataclass(frozen=True, slots=True)
class StripeSettingsView:
    """What an admin sees of an org's Stripe settings (secrets only as hints)."""

    webhook_path: str
    default_org: bool
    webhook_secrets: list[str]
    environment_secrets: list[str]
    mode: str
    mode_source: str


def describe_settings(engine: Engine, settings: Settings, org: Org) -> StripeSettingsView:
    """The org's Stripe settings and where each comes from."""
    with engine.connect() as conn:
        config = load_org_config(conn, org.id)
    fallback = default_org(engine, settings)
    is_default = fallback is not None and fallback.id == org.id
    env = split_secrets(settings.stripe_webhook_secret) if is_default else []
    return StripeSettingsView(
        webhook_path=f"/v1/stripe/webhook/{org.id}",
        default_org=is_default,
        webhook_secrets=[secret_hint(s) for s in config.webhook_secrets],
        environment_secrets=[secret_hint(s) for s in env],
        mode=config.mode or settings.stripe_mode,
        mode_source="org" if config.mode else "environment",
    )
