"""What each Stripe object is worth as revenue, in minor units of its own currency.

Revenue excludes tax and is net of discounts and pre-tax credits. A paid invoice books each line
over the line's period, day by day; credit notes, refunds and lost disputes book a negative
amount on the day they happen. Amounts follow Stripe API version 2026-10-28 (`taxes`,
`pretax_credit_amounts` and `discount_amounts` on invoice lines).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from margindash.stripe_sync.snapshots import StripeDataError, ref_id

API_VERSION = "2026-10-28"
# A line spread over more days than this is a data error, not a contract.
MAX_LINE_DAYS = 3660


@dataclass(frozen=True, slots=True)
class StripeRevenue:
    """One revenue entry an object is worth (negative for credits, refunds, lost disputes)."""

    revenue_id: str
    amount_minor: int
    currency: str
    start: date
    end: date
    description: str


def revenue_id(livemode: bool, *parts: str) -> str:
    """The ledger id of a Stripe amount: `stripe:live:in_…:il_…`, `stripe:test:re_…`."""
    return ":".join(("stripe", "live" if livemode else "test", *parts))


# Stripe's times are Unix seconds. Up to the end of 9998: every org-local date of it exists,
# and reports reach that far.
_LAST_TIMESTAMP = 253_370_764_799  # 9998-12-31T23:59:59Z


def is_stripe_timestamp(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _LAST_TIMESTAMP


def stripe_time(timestamp: Any) -> datetime:
    """A Stripe Unix timestamp as a UTC time; `StripeDataError` for anything else."""
    if not is_stripe_timestamp(timestamp):
        raise StripeDataError(f"not a Unix timestamp from 1970 to 9998: {timestamp!r}")
    return datetime.fromtimestamp(timestamp, UTC)


def local_day(timestamp: Any, zone: ZoneInfo) -> date:
    """The org-local date of a Unix timestamp."""
    return stripe_time(timestamp).astimezone(zone).date()


def _int(obj: Mapping[str, Any], name: str, where: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise StripeDataError(f"{where}: `{name}` must be an integer amount")
    return value


def _currency(obj: Mapping[str, Any], where: str) -> str:
    value = obj.get("currency")
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise StripeDataError(f"{where}: `currency` must be an ISO code")
    return value.lower()


def line_net_minor(line: Mapping[str, Any]) -> int:
    """A line's amount excluding tax, net of discounts and pre-tax credits.

    `amount` includes tax only for tax-inclusive prices. Discounts appear both in
    `discount_amounts` and, as type `discount`, in `pretax_credit_amounts`: counted once.
    """
    where = f"invoice line {line.get('id')}"
    amount = _int(line, "amount", where)
    inclusive_tax = sum(
        _int(tax, "amount", where)
        for tax in line.get("taxes") or []
        if tax.get("tax_behavior") == "inclusive"
    )
    credits = 0
    credited_discounts: set[str | None] = set()
    for credit in line.get("pretax_credit_amounts") or []:
        credits += _int(credit, "amount", where)
        if credit.get("type") == "discount":
            credited_discounts.add(ref_id(credit.get("discount")))
    discounts = sum(
        _int(item, "amount", where)
        for item in line.get("discount_amounts") or []
        if ref_id(item.get("discount")) not in credited_discounts
    )
    return amount - inclusive_tax - credits - discounts


def line_days(line: Mapping[str, Any], zone: ZoneInfo) -> tuple[date, date]:
    """The org-local days a line covers: its period's end is the next period's start."""
    period = line.get("period")
    if not isinstance(period, Mapping):
        raise StripeDataError(f"invoice line {line.get('id')}: `period` missing")
    start, end = period.get("start"), period.get("end")
    first = local_day(start, zone)
    if isinstance(start, int) and isinstance(end, int) and end > start:
        last = local_day(end - 1, zone)
    else:
        last = first
    if (last - first).days >= MAX_LINE_DAYS:
        raise StripeDataError(f"invoice line {line.get('id')}: period longer than 10 years")
    return first, last


def invoice_lines(invoice: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """All lines of an invoice; raises if only the first page is at hand."""
    lines = invoice.get("lines")
    if not isinstance(lines, Mapping) or not isinstance(lines.get("data"), list):
        raise StripeDataError(f"invoice {invoice.get('id')}: `lines` missing")
    if lines.get("has_more"):
        raise StripeDataError(f"invoice {invoice.get('id')}: only the first page of lines")
    return list(lines["data"])


def invoice_revenue(
    invoice: Mapping[str, Any], *, zone: ZoneInfo, livemode: bool
) -> list[StripeRevenue]:
    """A paid invoice's lines, each over its own period (prorations included)."""
    if invoice.get("status") != "paid":
        return []
    invoice_id = str(invoice["id"])
    currency = _currency(invoice, f"invoice {invoice_id}")
    label = invoice.get("number") or invoice_id
    found = []
    for line in invoice_lines(invoice):
        line_id = line.get("id")
        if not isinstance(line_id, str) or not line_id:
            raise StripeDataError(f"invoice {invoice_id}: a line without an id")
        amount = line_net_minor(line)
        if amount == 0:
            continue
        start, end = line_days(line, zone)
        text = str(line.get("description") or line_id)
        found.append(
            StripeRevenue(
                revenue_id(livemode, invoice_id, line_id),
                amount,
                _currency(line, f"invoice line {line_id}") if line.get("currency") else currency,
                start,
                end,
                f"Stripe invoice {label}: {text}"[:255],
            )
        )
    return found


def tax_share(invoice: Mapping[str, Any] | None) -> Fraction | None:
    """The part of an invoice's total that is revenue (not tax); None when there is no tax."""
    if invoice is None:
        return None
    total, net = invoice.get("total"), invoice.get("total_excluding_tax")
    if not isinstance(total, int) or not isinstance(net, int) or total <= 0 or net == total:
        return None
    return Fraction(net, total)


def credit_note_revenue(
    note: Mapping[str, Any], *, zone: ZoneInfo, livemode: bool, invoice_paid: bool
) -> list[StripeRevenue]:
    """An issued credit note, excluding tax, on the day it takes effect.

    A credit note issued before payment only lowers what the invoice asks for: it counts once
    the invoice is known to be paid (its lines are booked in full then).
    """
    if note.get("status") != "issued":
        return []
    if note.get("type") == "pre_payment" and not invoice_paid:
        return []
    note_id = str(note["id"])
    where = f"credit note {note_id}"
    if isinstance(note.get("total_excluding_tax"), int):
        amount = _int(note, "total_excluding_tax", where)
    else:
        taxes = sum(
            _int(t, "amount", where)
            for t in note.get("total_taxes") or []
            if t.get("tax_behavior") != "inclusive"
        )
        amount = _int(note, "total", where) - taxes
    if amount == 0:
        return []
    day = local_day(note.get("effective_at") or note.get("created"), zone)
    return [
        StripeRevenue(
            revenue_id(livemode, note_id),
            -amount,
            _currency(note, where),
            day,
            day,
            f"Stripe credit note {note.get('number') or note_id}"[:255],
        )
    ]


def credited_refund_minor(refund_id: str, notes: Sequence[Mapping[str, Any]]) -> int:
    """How much of a refund issued credit notes already count (so it is not counted twice)."""
    total = 0
    for note in notes:
        if note.get("status") == "void":
            continue
        for item in note.get("refunds") or []:
            if ref_id(item.get("refund")) == refund_id:
                total += int(item.get("amount_refunded") or 0)
    return total


def refund_revenue(
    refund: Mapping[str, Any],
    *,
    zone: ZoneInfo,
    livemode: bool,
    credited: int,
    share: Fraction | None,
) -> list[StripeRevenue]:
    """A succeeded refund not already counted by a credit note, without its tax part."""
    if refund.get("status") != "succeeded":
        return []
    refund_id = str(refund["id"])
    where = f"refund {refund_id}"
    gross = _int(refund, "amount", where) - credited
    if gross <= 0:
        return []
    amount = round(gross * share) if share is not None else gross
    day = local_day(refund.get("created"), zone)
    return [
        StripeRevenue(
            revenue_id(livemode, refund_id),
            -amount,
            _currency(refund, where),
            day,
            day,
            f"Stripe refund {refund_id}",
        )
    ]


def charge_revenue(
    charge: Mapping[str, Any], *, zone: ZoneInfo, livemode: bool, for_invoice: bool
) -> list[StripeRevenue]:
    """A captured charge that pays no invoice (an invoice's payment is booked by its lines)."""
    if for_invoice or charge.get("status") != "succeeded" or not charge.get("captured"):
        return []
    charge_id = str(charge["id"])
    where = f"charge {charge_id}"
    captured = charge.get("amount_captured")
    amount = captured if isinstance(captured, int) else _int(charge, "amount", where)
    if amount == 0:
        return []
    day = local_day(charge.get("created"), zone)
    return [
        StripeRevenue(
            revenue_id(livemode, charge_id),
            amount,
            _currency(charge, where),
            day,
            day,
            f"Stripe charge {charge.get('description') or charge_id}"[:255],
        )
    ]


def dispute_revenue(
    dispute: Mapping[str, Any],
    *,
    zone: ZoneInfo,
    livemode: bool,
    lost_at: datetime | None,
    share: Fraction | None,
) -> list[StripeRevenue]:
    """A lost dispute, without its tax part, on the day it was seen lost."""
    if dispute.get("status") != "lost":
        return []
    dispute_id = str(dispute["id"])
    where = f"dispute {dispute_id}"
    gross = _int(dispute, "amount", where)
    amount = round(gross * share) if share is not None else gross
    when = lost_at or stripe_time(_int(dispute, "created", where))
    day = when.astimezone(zone).date()
    return [
        StripeRevenue(
            revenue_id(livemode, dispute_id),
            -amount,
            _currency(dispute, where),
            day,
            day,
            f"Stripe dispute {dispute_id} lost",
        )
    ]


def subscription_metadata(invoice: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The metadata of the subscription an invoice bills, as of its finalisation."""
    parent = (invoice or {}).get("parent") or {}
    details = parent.get("subscription_details") or {}
    metadata = details.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}
