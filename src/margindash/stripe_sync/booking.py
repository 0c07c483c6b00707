"""Keep the revenue ledger equal to what the stored Stripe objects are worth.

`Booker.rebook` derives each object's entries from its newest snapshot (and the objects it
depends on: a refund on its invoice and credit notes), attributes them to an app customer and
replaces the object's entries in `revenue_entries` — moving, replacing or removing them together
with their spread in the rollups, in the caller's transaction. Re-booking is idempotent, so
retries, replays, out-of-order events and backfills never count anything twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select

from margindash.config import Settings
from margindash.db.tables import revenue_entries, stripe_entries
from margindash.ledger.revenue import (
    CheckedRevenue,
    convert_revenue,
    load_fx_rates,
    move_revenue,
    remove_revenue,
    replace_revenue,
)
from margindash.orgs.service import Org
from margindash.stripe_sync.amounts import (
    StripeRevenue,
    charge_revenue,
    credit_note_revenue,
    credited_refund_minor,
    dispute_revenue,
    invoice_revenue,
    refund_revenue,
    subscription_metadata,
    tax_share,
)
from margindash.stripe_sync.attribution import Attribution, CustomerResolver
from margindash.stripe_sync.org_config import booked_mode
from margindash.stripe_sync.snapshots import StoredObject, load_objects, ref_id, referring

SOURCE = "stripe"


@dataclass(frozen=True, slots=True)
class Booked:
    """One amount an object is worth, attributed to a customer."""

    revenue: StripeRevenue
    attribution: Attribution


@dataclass(slots=True)
class Booker:
    """Re-books Stripe objects of one org inside one transaction."""

    conn: Connection
    engine: Engine
    org: Org
    settings: Settings
    resolver: CustomerResolver = field(init=False)
    booked_livemode: bool = field(init=False)
    _rates: dict[str, Decimal] | None = field(default=None, init=False)
    _objects: dict[tuple[bool, str], StoredObject | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.resolver = CustomerResolver(
            self.conn, self.org.id, self.settings.stripe_customer_metadata_key
        )
        self.booked_livemode = booked_mode(self.conn, self.settings, self.org.id) == "live"

    def rebook(self, *, livemode: bool, object_ids: Iterable[str]) -> int:
        """Make the ledger match these objects; returns how many entries changed."""
        ids = sorted(set(object_ids))
        found = load_objects(self.conn, org_id=self.org.id, livemode=livemode, object_ids=ids)
        changed = 0
        for object_id in ids:
            stored = found.get(object_id)
            self._objects[(livemode, object_id)] = stored
            wanted = self.derive(stored) if stored and livemode == self.booked_livemode else []
            changed += self._sync(livemode, object_id, wanted)
        return changed

    # What an object is worth -------------------------------------------------------------

    def derive(self, stored: StoredObject) -> list[Booked]:
        """The attributed amounts a stored object is worth (empty for customers and links)."""
        obj, zone, live = stored.payload, self.org.zone, stored.livemode
        if stored.object_type == "invoice":
            who = self.invoice_attribution(obj)
            return [Booked(r, who) for r in invoice_revenue(obj, zone=zone, livemode=live)]
        if stored.object_type == "credit_note":
            target = self._object(live, ref_id(obj.get("invoice")))
            paid = target is not None and target.payload.get("status") == "paid"
            who = (
                self.invoice_attribution(target.payload)
                if target
                else self._resolve(obj.get("customer"), live)
            )
            items = credit_note_revenue(obj, zone=zone, livemode=live, invoice_paid=paid)
            return [Booked(r, who) for r in items]
        if stored.object_type == "refund":
            invoice = self._paid_invoice(live, obj)
            credited = credited_refund_minor(stored.object_id, self._credit_notes_of(stored))
            items = refund_revenue(
                obj, zone=zone, livemode=live, credited=credited, share=tax_share(invoice)
            )
            return [Booked(r, self._payment_attribution(live, obj, invoice)) for r in items]
        if stored.object_type == "dispute":
            invoice = self._paid_invoice(live, obj)
            items = dispute_revenue(
                obj, zone=zone, livemode=live, lost_at=stored.closed_at, share=tax_share(invoice)
            )
            return [Booked(r, self._payment_attribution(live, obj, invoice)) for r in items]
        if stored.object_type == "charge":
            linked = bool(self._invoices_paid_by(live, stored.object_id, obj))
            who = self._resolve(obj.get("customer"), live)
            items = charge_revenue(obj, zone=zone, livemode=live, for_invoice=linked)
            return [Booked(r, who) for r in items]
        return []

    def invoice_attribution(self, invoice: Mapping[str, Any]) -> Attribution:
        """Who an invoice (and what refers to it) belongs to: its customer or subscription."""
        return self.resolver.resolve(
            ref_id(invoice.get("customer")),
            livemode=bool(invoice.get("livemode")),
            subscription_metadata=subscription_metadata(invoice),
        )

    def _resolve(self, customer: Any, livemode: bool) -> Attribution:
        return self.resolver.resolve(ref_id(customer), livemode=livemode)

    def _object(self, livemode: bool, object_id: str | None) -> StoredObject | None:
        if not object_id:
            return None
        key = (livemode, object_id)
        if key not in self._objects:
            found = load_objects(
                self.conn, org_id=self.org.id, livemode=livemode, object_ids=[object_id]
            )
            self._objects[key] = found.get(object_id)
        return self._objects[key]

    def _invoices_paid_by(
        self, livemode: bool, charge_id: str | None, obj: Mapping[str, Any]
    ) -> list[str]:
        """Invoices a payment (charge or payment intent) went to, from invoice payments."""
        keys = [k for k in (charge_id, ref_id(obj.get("payment_intent"))) if k]
        referrers = referring(self.conn, org_id=self.org.id, livemode=livemode, ids=keys)
        invoices = []
        for object_id in sorted({o for objs in referrers.values() for o in objs}):
            link = self._object(livemode, object_id)
            if link is None or link.object_type != "invoice_payment":
                continue
            if link.payload.get("status") == "canceled":
                continue
            invoice_id = ref_id(link.payload.get("invoice"))
            if invoice_id:
                invoices.append(invoice_id)
        return invoices

    def _paid_invoice(self, livemode: bool, obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The paid invoice a refund's or dispute's charge paid, when it is known."""
        for invoice_id in self._invoices_paid_by(livemode, ref_id(obj.get("charge")), obj):
            invoice = self._object(livemode, invoice_id)
            if invoice is not None and invoice.payload.get("status") == "paid":
                return invoice.payload
        return None

    def _payment_attribution(
        self, livemode: bool, obj: Mapping[str, Any], invoice: Mapping[str, Any] | None
    ) -> Attribution:
        """A refund or dispute belongs to whoever its invoice or charge belonged to."""
        if invoice is not None:
            return self.invoice_attribution(invoice)
        charge = self._object(livemode, ref_id(obj.get("charge")))
        customer = obj.get("customer") or (charge.payload.get("customer") if charge else None)
        return self._resolve(customer, livemode)

    def _credit_notes_of(self, refund: StoredObject) -> list[Mapping[str, Any]]:
        referrers = referring(
            self.conn, org_id=self.org.id, livemode=refund.livemode, ids=[refund.object_id]
        )
        notes: list[Mapping[str, Any]] = []
        for object_id in sorted(referrers.get(refund.object_id, ())):
            note = self._object(refund.livemode, object_id)
            if note is not None and note.object_type == "credit_note":
                notes.append(note.payload)
        return notes

    # Making the ledger match -------------------------------------------------------------

    def _sync(self, livemode: bool, object_id: str, wanted: list[Booked]) -> int:
        linked = set(
            self.conn.execute(
                select(stripe_entries.c.revenue_id).where(
                    stripe_entries.c.org_id == self.org.id,
                    stripe_entries.c.livemode == livemode,
                    stripe_entries.c.object_id == object_id,
                )
            ).scalars()
        )
        ids = {b.revenue.revenue_id for b in wanted}
        stale = sorted(linked - ids)
        changed = 0
        if stale:
            changed += remove_revenue(self.conn, self.engine, org_id=self.org.id, revenue_ids=stale)
            self.conn.execute(
                delete(stripe_entries).where(
                    stripe_entries.c.org_id == self.org.id,
                    stripe_entries.c.revenue_id.in_(stale),
                )
            )
        if not wanted:
            return changed
        current = self._current(ids)
        entries = [self._convert(b, current.get(b.revenue.revenue_id)) for b in wanted]
        moves: dict[str, list[str]] = {}
        replaced = []
        for entry in entries:
            row = current.get(entry.revenue_id)
            if row is not None and _same_but_customer(row, entry):
                moves.setdefault(entry.customer_id, []).append(entry.revenue_id)
            else:
                replaced.append(entry)
        for customer_id, revenue_ids in sorted(moves.items()):
            changed += move_revenue(
                self.conn,
                self.engine,
                org_id=self.org.id,
                revenue_ids=revenue_ids,
                customer_id=customer_id,
            )
        changed += replace_revenue(
            self.conn, self.engine, org_id=self.org.id, entries=replaced, source=SOURCE
        )
        new_links = sorted(ids - linked)
        if new_links:
            self.conn.execute(
                insert(stripe_entries),
                [
                    {
                        "org_id": self.org.id,
                        "revenue_id": revenue_id,
                        "livemode": livemode,
                        "object_id": object_id,
                    }
                    for revenue_id in new_links
                ],
            )
        return changed

    def _current(self, revenue_ids: set[str]) -> dict[str, Row[Any]]:
        rows = self.conn.execute(
            select(revenue_entries).where(
                revenue_entries.c.org_id == self.org.id,
                revenue_entries.c.revenue_id.in_(sorted(revenue_ids)),
            )
        )
        return {row.revenue_id: row for row in rows}

    def _convert(self, booked: Booked, row: Row[Any] | None) -> CheckedRevenue:
        """In the org's currency at the rate the entry was first booked at (or today's)."""
        item = booked.revenue
        rate = Decimal(row.fx_rate) if row is not None and row.currency == item.currency else None
        return convert_revenue(
            org=self.org,
            rates=self.rates() if rate is None and item.currency != self.org.currency else {},
            revenue_id=item.revenue_id,
            customer_id=booked.attribution.customer_id,
            amount_minor=item.amount_minor,
            currency=item.currency,
            period_start=item.start,
            period_end=item.end,
            description=item.description,
            fx_rate=rate,
        )

    def rates(self) -> dict[str, Decimal]:
        if self._rates is None:
            self._rates = load_fx_rates(self.engine, self.org.id)
        return self._rates


def _same_but_customer(row: Row[Any], entry: CheckedRevenue) -> bool:
    return (
        row.customer_id != entry.customer_id
        and row.amount_minor == entry.amount_minor
        and row.currency == entry.currency
        and row.amount_nanos == entry.amount_nanos
        and row.period_start == entry.period_start
        and row.period_end == entry.period_end
        and row.description == entry.description
    )
