"""Create and look up organisations."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, select

from margindash.db.tables import orgs, revenue_entries
from margindash.orgs.keys import create_api_key

_ORG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Org:
    """A tenant: every row of data belongs to exactly one."""

    id: str
    name: str
    timezone: str
    currency: str

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)


@dataclass(frozen=True, slots=True)
class NewOrg:
    """An org just created, with its keys (shown once)."""

    org: Org
    admin_key: str
    ingest_key: str


class OrgExists(ValueError):
    """An org with that name already exists."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name (cached: ZoneInfo lookups are not free)."""
    return ZoneInfo(name)


def create_org(
    engine: Engine, *, name: str, timezone: str = "UTC", currency: str = "usd"
) -> NewOrg:
    """Create an org with an admin key and an ingest key."""
    if not _ORG_NAME.match(name):
        raise ValueError("org name: 1-64 letters, digits, spaces, '.', '_' or '-'")
    try:
        zone(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    _check_reporting_currency(currency)
    org = Org(
        id=f"org_{secrets.token_hex(8)}", name=name, timezone=timezone, currency=currency.lower()
    )
    with engine.begin() as conn:
        if conn.execute(select(orgs.c.id).where(orgs.c.name == name)).first():
            raise OrgExists(f"an org named {name!r} already exists")
        conn.execute(
            orgs.insert().values(
                id=org.id,
                name=org.name,
                timezone=org.timezone,
                currency=org.currency,
                created_at=datetime.now(UTC),
            )
        )
    admin_key = create_api_key(engine, org_id=org.id, scope="admin", name="admin key")
    ingest_key = create_api_key(engine, org_id=org.id, scope="ingest", name="ingest key")
    return NewOrg(org=org, admin_key=admin_key, ingest_key=ingest_key)


def get_org(engine: Engine, org_id: str) -> Org | None:
    """The org with this id, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(orgs).where(orgs.c.id == org_id)).first()
    return Org(row.id, row.name, row.timezone, row.currency) if row else None


def find_org(engine: Engine, name_or_id: str | None) -> Org | None:
    """The org by name or id; with None, the only org (or the oldest when there are several)."""
    with engine.connect() as conn:
        query = select(orgs).order_by(orgs.c.created_at)
        if name_or_id is not None:
            query = query.where((orgs.c.name == name_or_id) | (orgs.c.id == name_or_id))
        row = conn.execute(query).first()
    return Org(row.id, row.name, row.timezone, row.currency) if row else None


# Model prices, and so every cost, are in USD, and `revenue_amount_cents` on usage events is USD
# cents: a report in another currency would add USD costs to converted revenue.
REPORTING_CURRENCY = "usd"


def _check_reporting_currency(currency: str) -> None:
    if currency.lower() != REPORTING_CURRENCY:
        raise ValueError(
            "currency: reports are in USD, the currency of model prices; revenue in other "
            "currencies is converted with an FX rate (POST /v1/fx-rates)"
        )


def update_org(
    engine: Engine, *, org_id: str, timezone: str | None = None, currency: str | None = None
) -> Org:
    """Change an org's time zone or reporting currency (the latter only before any revenue)."""
    current = get_org(engine, org_id)
    if current is None:
        raise ValueError(f"no org {org_id!r}")
    values: dict[str, str] = {}
    if timezone is not None and timezone != current.timezone:
        try:
            zone(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}") from exc
        values["timezone"] = timezone
    if currency is not None and currency.lower() != current.currency:
        _check_reporting_currency(currency)
        values["currency"] = currency.lower()
    with engine.begin() as conn:
        if (
            "currency" in values
            and conn.execute(
                select(revenue_entries.c.id).where(revenue_entries.c.org_id == org_id).limit(1)
            ).first()
        ):
            raise ValueError("the reporting currency cannot change once revenue is booked in it")
        if values:
            conn.execute(orgs.update().where(orgs.c.id == org_id).values(**values))
    return Org(
        current.id,
        current.name,
        values.get("timezone", current.timezone),
        values.get("currency", current.currency),
    )
