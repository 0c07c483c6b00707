"""Stripe customers of an org: manual mappings (which move booked revenue) and the list of
customers with their attribution, so unmapped ones can be found by name or e-mail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, select

from margindash.config import Settings
from margindash.db.engine import upsert
from margindash.db.tables import (
    revenue_entries,
    stripe_customer_mappings,
    stripe_entries,
    stripe_objects,
    stripe_refs,
)
from margindash.orgs.service import Org
from margindash.stripe_sync.amounts import subscription_metadata
from margindash.stripe_sync.attribution import MAX_CUSTOMER_ID, CustomerResolver
from margindash.stripe_sync.database import in_transaction
from margindash.stripe_sync.processing import rebook
from margindash.stripe_sync.snapshots import objects_of_customer

STRIPE_CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]{1,250}$")


@dataclass(frozen=True, slots=True)
class CustomerMapping:
    """A manual mapping from a Stripe customer to an app customer."""

    stripe_customer_id: str
    customer_id: str
    updated_at: datetime


def check_mapping(stripe_customer_id: str, customer_id: str | None) -> str | None:
    """The app customer id, stripped; raises ValueError naming the bad field."""
    if not STRIPE_CUSTOMER_ID.match(stripe_customer_id):
        raise ValueError("stripe_customer_id: a Stripe customer id such as cus_NffrFeUfNV2Hib")
    if customer_id is None:
        return None
    value = customer_id.strip()
    if not 0 < len(value) <= MAX_CUSTOMER_ID:
        raise ValueError(f"customer_id: 1 to {MAX_CUSTOMER_ID} characters")
    return value


def map_customer(
    engine: Engine, *, settings: Settings, org: Org, stripe_customer_id: str, customer_id: str
) -> int:
    """Map a Stripe customer to an app customer and move its revenue; returns entries moved."""
    target = check_mapping(stripe_customer_id, customer_id)

    def work(conn: Connection) -> int:
        stmt = upsert(engine, stripe_customer_mappings).values(
            org_id=org.id,
            stripe_customer_id=stripe_customer_id,
            customer_id=target,
            updated_at=datetime.now(UTC),
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["org_id", "stripe_customer_id"],
                set_={
                    "customer_id": stmt.excluded.customer_id,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )
        return _rebook_customer(conn, engine, settings, org, stripe_customer_id)

    return in_transaction(engine, work)


def unmap_customer(
    engine: Engine, *, settings: Settings, org: Org, stripe_customer_id: str
) -> int | None:
    """Remove a manual mapping (metadata decides again); entries moved, None if there was none."""
    check_mapping(stripe_customer_id, None)

    def work(conn: Connection) -> int | None:
        removed = conn.execute(
            delete(stripe_customer_mappings).where(
                stripe_customer_mappings.c.org_id == org.id,
                stripe_customer_mappings.c.stripe_customer_id == stripe_customer_id,
            )
        ).rowcount
        if not removed:
            return None
        return _rebook_customer(conn, engine, settings, org, stripe_customer_id)

    return in_transaction(engine, work)


def _rebook_customer(
    conn: Connection, engine: Engine, settings: Settings, org: Org, stripe_customer_id: str
) -> int:
    targets: dict[bool, set[str]] = {False: set(), True: set()}
    for livemode, object_id in objects_of_customer(
        conn, org_id=org.id, stripe_customer_id=stripe_customer_id
    ):
        targets[livemode].add(object_id)
    return rebook(conn, engine, org=org, settings=settings, targets=targets)


def list_mappings(engine: Engine, *, org_id: str) -> list[CustomerMapping]:
    """The org's manual mappings."""
    t = stripe_customer_mappings
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.c.stripe_customer_id, t.c.customer_id, t.c.updated_at)
            .where(t.c.org_id == org_id)
            .order_by(t.c.stripe_customer_id)
        )
        return [CustomerMapping(r.stripe_customer_id, r.customer_id, r.updated_at) for r in rows]


@dataclass(frozen=True, slots=True)
class StripeCustomer:
    """A Stripe customer seen in the org's Stripe data, and where its revenue goes."""

    stripe_customer_id: str
    livemode: bool
    name: str | None
    email: str | None
    customer_id: str
    source: str
    mapped: bool
    revenue_nanos: int


def list_customers(
    engine: Engine, *, settings: Settings, org: Org, unmapped_only: bool = False
) -> list[StripeCustomer]:
    """Every Stripe customer seen, with its attribution and the revenue its objects booked."""
    with engine.connect() as conn:
        profiles = _profiles(conn, org.id)
        revenue = _revenue_by_customer(conn, org.id)
        resolver = CustomerResolver(conn, org.id, settings.stripe_customer_metadata_key)
        found = []
        for (livemode, customer), (name, email, invoice) in sorted(profiles.items()):
            who = resolver.resolve(
                customer, livemode=livemode, subscription_metadata=subscription_metadata(invoice)
            )
            if unmapped_only and who.mapped:
                continue
            found.append(
                StripeCustomer(
                    customer,
                    livemode,
                    name,
                    email,
                    who.customer_id,
                    who.source,
                    who.mapped,
                    revenue.get((livemode, customer), 0),
                )
            )
    return found


def _profiles(
    conn: Connection, org_id: str
) -> dict[tuple[bool, str], tuple[str | None, str | None, dict[str, Any] | None]]:
    """Name, e-mail and latest invoice per Stripe customer (invoices fill in missing names)."""
    t = stripe_objects
    rows = conn.execute(
        select(t.c.livemode, t.c.customer_ref, t.c.object_type, t.c.payload)
        .where(
            t.c.org_id == org_id,
            t.c.customer_ref.is_not(None),
            t.c.object_type.in_(("customer", "invoice")),
        )
        .order_by(t.c.seen_at)
    )
    found: dict[tuple[bool, str], tuple[str | None, str | None, dict[str, Any] | None]] = {}
    customers: dict[tuple[bool, str], dict[str, Any]] = {}
    for row in rows:
        key = (bool(row.livemode), row.customer_ref)
        payload = orjson.loads(row.payload)
        if row.object_type == "customer":
            customers[key] = payload
            name, email, invoice = found.get(key, (None, None, None))
            found[key] = (payload.get("name"), payload.get("email"), invoice)
        else:
            name, email, _ = found.get(key, (None, None, None))
            if key not in customers:
                name, email = payload.get("customer_name"), payload.get("customer_email")
            found[key] = (name, email, payload)
    return found


Node = tuple[bool, str]  # (livemode, Stripe object id)


def _revenue_by_customer(conn: Connection, org_id: str) -> dict[Node, int]:
    """Revenue booked per Stripe customer: from its objects, and from objects connected to them
    by references. Refunds and disputes name a charge, not the customer."""
    o, refs, e, r = stripe_objects, stripe_refs, stripe_entries, revenue_entries
    groups = _Groups()
    own: dict[Node, Node] = {}  # object → the customer it names
    for row in conn.execute(
        select(o.c.livemode, o.c.object_id, o.c.customer_ref).where(
            o.c.org_id == org_id, o.c.customer_ref.is_not(None)
        )
    ):
        customer = (bool(row.livemode), row.customer_ref)
        own[(customer[0], row.object_id)] = customer
        groups.join((customer[0], row.object_id), customer)
    for row in conn.execute(
        select(refs.c.livemode, refs.c.object_id, refs.c.ref_id).where(refs.c.org_id == org_id)
    ):
        groups.join((bool(row.livemode), row.object_id), (bool(row.livemode), row.ref_id))
    customers_of: dict[Node, set[Node]] = {}
    for customer in set(own.values()):
        customers_of.setdefault(groups.find(customer), set()).add(customer)
    booked: dict[Node, int] = {}
    for row in conn.execute(
        select(e.c.livemode, e.c.object_id, r.c.amount_nanos)
        .select_from(e.join(r, and_(r.c.org_id == e.c.org_id, r.c.revenue_id == e.c.revenue_id)))
        .where(e.c.org_id == org_id)
    ):
        node = (bool(row.livemode), row.object_id)
        candidates = {own[node]} if node in own else customers_of.get(groups.find(node), set())
        if len(candidates) == 1:  # objects linking two customers' data are not guessed at
            (customer,) = candidates
            booked[customer] = booked.get(customer, 0) + int(row.amount_nanos)
    return booked


class _Groups:
    """Objects joined into groups by their references (union-find)."""

    def __init__(self) -> None:
        self._parent: dict[Node, Node] = {}

    def find(self, node: Node) -> Node:
        root = node
        while (up := self._parent.get(root, root)) != root:
            root = up
        while node != root:  # point the path straight at the root
            self._parent[node], node = root, self._parent[node]
        return root

    def join(self, a: Node, b: Node) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self._parent[root_a] = root_b
