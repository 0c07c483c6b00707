"""Verification before rollout: the last N paid invoices, who they map to and what they book,
compared with the ledger, without writing anything (the brief's "test with 5 sample invoice
mappings")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import stripe
from sqlalchemy import Connection, Engine, select
from stripe import StripeClient

from margindash.config import Settings
from margindash.db.tables import revenue_entries, stripe_objects
from margindash.ledger.revenue import MissingFxRate, convert_revenue, load_fx_rates
from margindash.orgs.service import Org
from margindash.stripe_sync import client as api
from margindash.stripe_sync.amounts import invoice_lines, invoice_revenue, subscription_metadata
from margindash.stripe_sync.attribution import CustomerResolver
from margindash.stripe_sync.org_config import booked_mode
from margindash.stripe_sync.snapshots import StripeDataError, ref_id


@dataclass(frozen=True, slots=True)
class LineCheck:
    """One line: net amount (minor units of the invoice currency) and the days it covers."""

    revenue_id: str
    description: str
    amount_minor: int
    start: date
    end: date


@dataclass(slots=True)
class InvoiceCheck:
    """One invoice: its mapping, what it should book and what the ledger holds."""

    invoice_id: str
    number: str | None
    livemode: bool
    stripe_customer_id: str | None
    name: str | None
    email: str | None
    customer_id: str
    source: str
    currency: str
    total_minor: int
    tax_minor: int
    lines: list[LineCheck] = field(default_factory=list)
    expected_nanos: int | None = None
    booked_nanos: int = 0
    state: str = "not booked"  # booked, not booked, differs, other mode, error
    problem: str | None = None


def verify_invoices(
    engine: Engine,
    *,
    settings: Settings,
    org: Org,
    last: int,
    client: StripeClient | None = None,
) -> list[InvoiceCheck]:
    """Check the last `last` paid invoices: from Stripe's API with a client, else as stored."""
    rates = load_fx_rates(engine, org.id)
    with engine.connect() as conn:
        mode = booked_mode(conn, settings, org.id)
        resolver = CustomerResolver(conn, org.id, settings.stripe_customer_metadata_key)
        invoices = _from_api(client, last, resolver) if client else _stored(conn, org.id, last)
        return [_check(conn, org, rates, resolver, mode, invoice) for invoice in invoices]


def _from_api(client: StripeClient, last: int, resolver: CustomerResolver) -> list[dict[str, Any]]:
    invoices = []
    for invoice in api.listing(client, "invoices", {"status": "paid", "limit": min(last, 100)}):
        lines = invoice.get("lines") or {}
        if lines.get("has_more"):
            invoice["lines"] = {
                **lines,
                "has_more": False,
                "data": api.invoice_lines(client, invoice["id"]),
            }
        customer_id = ref_id(invoice.get("customer"))
        key = (bool(invoice.get("livemode")), customer_id or "")
        if customer_id and key not in resolver.customers:
            try:
                resolver.customers[key] = api.customer(client, customer_id)
            except stripe.InvalidRequestError:  # deleted: the invoice still names it
                resolver.customers[key] = {}
        invoices.append(invoice)
        if len(invoices) >= last:
            break
    return invoices


def _stored(conn: Connection, org_id: str, last: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(stripe_objects.c.payload)
        .where(stripe_objects.c.org_id == org_id, stripe_objects.c.object_type == "invoice")
        .order_by(stripe_objects.c.seen_at.desc())
        .limit(last)
    ).scalars()
    return [orjson.loads(payload) for payload in rows]


def _check(
    conn: Connection,
    org: Org,
    rates: dict[str, Any],
    resolver: CustomerResolver,
    mode: str,
    invoice: dict[str, Any],
) -> InvoiceCheck:
    livemode = bool(invoice.get("livemode"))
    customer = ref_id(invoice.get("customer"))
    who = resolver.resolve(
        customer, livemode=livemode, subscription_metadata=subscription_metadata(invoice)
    )
    profile = resolver.customer(customer, livemode=livemode) if customer else None
    total = int(invoice.get("total") or 0)
    check = InvoiceCheck(
        invoice_id=str(invoice.get("id")),
        number=invoice.get("number"),
        livemode=livemode,
        stripe_customer_id=customer,
        name=(profile or {}).get("name") or invoice.get("customer_name"),
        email=(profile or {}).get("email") or invoice.get("customer_email"),
        customer_id=who.customer_id,
        source=who.source,
        currency=str(invoice.get("currency") or ""),
        total_minor=total,
        tax_minor=total - int(invoice.get("total_excluding_tax") or total),
    )
    try:
        items = invoice_revenue(invoice, zone=org.zone, livemode=livemode)
        texts = {line.get("id"): line.get("description") for line in invoice_lines(invoice)}
        check.lines = [
            LineCheck(
                i.revenue_id,
                str(texts.get(i.revenue_id.rsplit(":", 1)[-1]) or i.description),
                i.amount_minor,
                i.start,
                i.end,
            )
            for i in items
        ]
        check.expected_nanos = sum(
            convert_revenue(
                org=org,
                rates=rates,
                revenue_id=i.revenue_id,
                customer_id=who.customer_id,
                amount_minor=i.amount_minor,
                currency=i.currency,
                period_start=i.start,
                period_end=i.end,
            ).amount_nanos
            for i in items
        )
    except (StripeDataError, MissingFxRate) as exc:
        check.state, check.problem = "error", str(exc)
        return check
    booked = conn.execute(
        select(revenue_entries.c.customer_id, revenue_entries.c.amount_nanos).where(
            revenue_entries.c.org_id == org.id,
            revenue_entries.c.revenue_id.in_([line.revenue_id for line in check.lines]),
        )
    ).all()
    check.booked_nanos = sum(row.amount_nanos for row in booked)
    if (mode == "live") != livemode:
        check.state = "other mode"
    elif not booked:
        check.state = "not booked"
    elif (
        len(booked) == len(check.lines)
        and check.booked_nanos == check.expected_nanos
        and all(row.customer_id == who.customer_id for row in booked)
    ):
        check.state = "booked"
    else:
        check.state = "differs"
    return check
