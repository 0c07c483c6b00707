"""Settings: API keys, dashboard users, Stripe webhook, e-mail, the org's zone and currency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import available_timezones

from sqlalchemy import Engine

from margindash.budgets.notifiers import AlertMessage, EmailNotifier
from margindash.config import Settings
from margindash.orgs.keys import SCOPES, KeyInfo, list_api_keys
from margindash.orgs.service import Org
from margindash.stripe_sync.org_config import StripeSettingsView, describe_settings
from margindash.users.accounts import ROLES, User, list_users
from margindash.web.tables import Column, DataTable

NOTICES = {
    "key-revoked": "The API key was revoked; it stops working within seconds.",
    "org-saved": "Organisation settings saved.",
    "email-sent": "Test e-mail sent; check the inbox (and the spam folder).",
    "stripe-saved": "Stripe settings saved.",
}
_TIMEZONES = sorted(available_timezones())
KEY_COLUMNS = (
    Column("id", "Id"),
    Column("name", "Name"),
    Column("scope", "Scope"),
    Column("hint", "Ends with"),
    Column("created_at", "Created", "timestamp"),
    Column("last_used_at", "Last used", "timestamp"),
    Column("revoked_at", "Revoked", "timestamp"),
)
USER_COLUMNS = (
    Column("email", "E-mail"),
    Column("role", "Role"),
    Column("created_at", "Created", "timestamp"),
    Column("last_login_at", "Last login", "timestamp"),
)


@dataclass(frozen=True, slots=True)
class SettingsView:
    """What an admin can see and change about the org."""

    keys: list[KeyInfo]
    users: list[User]
    webhook_url: str
    stripe: StripeSettingsView
    smtp_host: str | None
    alert_from: str
    timezones: list[str]
    scopes: tuple[str, ...] = SCOPES
    roles: tuple[str, ...] = ROLES

    @property
    def tables(self) -> dict[str, DataTable]:
        """The keys and users as exportable tables (never a secret: keys only by their end)."""
        keys = [{c.key: _text(getattr(key, c.key)) for c in KEY_COLUMNS} for key in self.keys]
        users = [{c.key: _text(getattr(user, c.key)) for c in USER_COLUMNS} for user in self.users]
        return {
            "keys": DataTable("keys", "API keys", KEY_COLUMNS, keys),
            "users": DataTable("users", "Dashboard users", USER_COLUMNS, users),
        }


def _text(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def build_settings(engine: Engine, settings: Settings, *, org: Org) -> SettingsView:
    """The settings page of an org."""
    stripe = describe_settings(engine, settings, org)
    return SettingsView(
        keys=list_api_keys(engine, org_id=org.id),
        users=list_users(engine, org_id=org.id),
        webhook_url=settings.dashboard_url + stripe.webhook_path,
        stripe=stripe,
        smtp_host=settings.smtp_host,
        alert_from=settings.alert_from,
        timezones=_TIMEZONES,
    )


def send_test_email(settings: Settings, *, org: Org, to: str) -> None:
    """Send a test e-mail through the alert relay; DeliveryFailed says why it did not go."""
    message = AlertMessage(
        kind="test",
        severity="info",
        subject=f"margindash test e-mail for {org.name}",
        body=(
            f"This is a test from margindash ({settings.dashboard_url}).\n"
            "Budget alerts of your organisation will arrive the same way."
        ),
    )
    EmailNotifier.from_settings(settings).send(message, target=to)
