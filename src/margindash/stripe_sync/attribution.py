"""Who a Stripe customer is in the app: `cus_…` → the `customer_id` usage events carry.

In order: a manual mapping (CLI or API), the customer's metadata key (default
`margindash_customer_id`), the same key on the invoice's subscription, and finally the `cus_` id
itself. Revenue attributed by the last rule is *unmapped*: it is booked under the `cus_` id, so it
is never dropped, and it moves when a mapping appears.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, select

from margindash.db.tables import stripe_customer_mappings, stripe_objects

UNATTRIBUTED = "unattributed"  # revenue without any Stripe customer (a guest charge)
MAX_CUSTOMER_ID = 255


@dataclass(frozen=True, slots=True)
class Attribution:
    """The app customer an amount belongs to, and which rule decided it."""

    customer_id: str
    source: str  # manual, customer_metadata, subscription_metadata, stripe_customer, none

    @property
    def mapped(self) -> bool:
        return self.source not in ("stripe_customer", "none")


@dataclass(slots=True)
class CustomerResolver:
    """Resolves Stripe customers of one org, caching what it read within a transaction.

    `customers` may hold customer objects not stored (read-only verification from the API).
    """

    conn: Connection
    org_id: str
    metadata_key: str
    customers: dict[tuple[bool, str], Mapping[str, Any]] = field(default_factory=dict)
    _manual: dict[str, str | None] = field(default_factory=dict)

    def resolve(
        self,
        stripe_customer_id: str | None,
        *,
        livemode: bool,
        subscription_metadata: Mapping[str, Any] | None = None,
    ) -> Attribution:
        if not stripe_customer_id:
            return Attribution(UNATTRIBUTED, "none")
        manual = self.manual(stripe_customer_id)
        if manual:
            return Attribution(manual, "manual")
        customer = self.customer(stripe_customer_id, livemode=livemode)
        for source, metadata in (
            ("customer_metadata", (customer or {}).get("metadata")),
            ("subscription_metadata", subscription_metadata),
        ):
            value = _metadata_value(metadata, self.metadata_key)
            if value:
                return Attribution(value, source)
        return Attribution(stripe_customer_id, "stripe_customer")

    def manual(self, stripe_customer_id: str) -> str | None:
        if stripe_customer_id not in self._manual:
            self._manual[stripe_customer_id] = self.conn.execute(
                select(stripe_customer_mappings.c.customer_id).where(
                    stripe_customer_mappings.c.org_id == self.org_id,
                    stripe_customer_mappings.c.stripe_customer_id == stripe_customer_id,
                )
            ).scalar()
        return self._manual[stripe_customer_id]

    def customer(self, stripe_customer_id: str, *, livemode: bool) -> Mapping[str, Any] | None:
        key = (livemode, stripe_customer_id)
        if key not in self.customers:
            payload = self.conn.execute(
                select(stripe_objects.c.payload).where(
                    stripe_objects.c.org_id == self.org_id,
                    stripe_objects.c.livemode == livemode,
                    stripe_objects.c.object_id == stripe_customer_id,
                )
            ).scalar()
            self.customers[key] = orjson.loads(payload) if payload else {}
        return self.customers[key] or None


def _metadata_value(metadata: Any, key: str) -> str | None:
    if not isinstance(metadata, Mapping):
        return None
    value = metadata.get(key)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MAX_CUSTOMER_ID else None
