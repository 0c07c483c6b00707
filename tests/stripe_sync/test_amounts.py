"""What a Stripe object is worth: tax out, discounts and credits once, days in the org's zone."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from margindash.stripe_sync.amounts import (
    credit_note_revenue,
    invoice_revenue,
    line_days,
    line_net_minor,
    refund_revenue,
    tax_share,
)
from margindash.stripe_sync.snapshots import StripeDataError
from tests.stripe_sync.helpers import load

UTC_ZONE = ZoneInfo("UTC")


def plexo_line(index: int) -> dict[str, Any]:
    line: dict[str, Any] = load("invoice_paid_plexo")["data"]["object"]["lines"]["data"][index]
    return line


def test_exclusive_tax_stays_out_and_a_discount_listed_twice_counts_once() -> None:
    line = plexo_line(1)  # $280.00, 10% off in discount_amounts and pretax_credit_amounts
    assert line_net_minor(line) == 25200


def test_inclusive_tax_and_credit_grants_come_off() -> None:
    line = plexo_line(1)
    line["taxes"][0].update(tax_behavior="inclusive", amount=1867)
    line["pretax_credit_amounts"].append(
        {
            "amount": 500,
            "credit_balance_transaction": "cbtxn_1QGrant",
            "discount": None,
            "type": "credit_balance_transaction",
        }
    )
    assert line_net_minor(line) == 28000 - 2800 - 500 - 1867


def test_a_discount_only_in_discount_amounts_still_comes_off() -> None:
    line = plexo_line(1)
    line["pretax_credit_amounts"] = []
    assert line_net_minor(line) == 25200


def test_a_line_covers_the_days_of_its_period_in_the_org_zone() -> None:
    line = plexo_line(0)  # Jan 15 00:00 UTC - Feb 15 00:00 UTC
    assert line_days(line, UTC_ZONE) == (date(2026, 1, 15), date(2026, 2, 14))
    assert line_days(line, ZoneInfo("America/New_York")) == (date(2026, 1, 14), date(2026, 2, 14))
    line["period"]["end"] = line["period"]["start"]
    assert line_days(line, UTC_ZONE) == (date(2026, 1, 15), date(2026, 1, 15))
    del line["period"]
    with pytest.raises(StripeDataError, match="period"):
        line_days(line, UTC_ZONE)


def test_only_paid_invoices_book_and_bad_amounts_are_data_errors() -> None:
    invoice = load("invoice_paid_plexo")["data"]["object"]
    assert [r.amount_minor for r in invoice_revenue(invoice, zone=UTC_ZONE, livemode=True)] == [
        5580,
        25200,
    ]
    assert invoice_revenue({**invoice, "status": "open"}, zone=UTC_ZONE, livemode=True) == []
    invoice["lines"]["data"][0]["amount"] = "62.00"
    with pytest.raises(StripeDataError, match="integer amount"):
        invoice_revenue(invoice, zone=UTC_ZONE, livemode=True)
    invoice["lines"]["has_more"] = True
    with pytest.raises(StripeDataError, match="first page"):
        invoice_revenue(invoice, zone=UTC_ZONE, livemode=True)


def test_refunds_lose_their_tax_share_rounded_half_even() -> None:
    invoice = load("invoice_paid_plexo")["data"]["object"]
    share = tax_share(invoice)
    assert share == Fraction(30780, 33242)
    refund = load("refund_updated_plexo")["data"]["object"]
    (entry,) = refund_revenue(refund, zone=UTC_ZONE, livemode=True, credited=0, share=share)
    assert (entry.amount_minor, entry.start) == (-4630, date(2026, 3, 10))
    assert refund_revenue(refund, zone=UTC_ZONE, livemode=True, credited=5000, share=share) == []
    assert tax_share({**invoice, "total_excluding_tax": invoice["total"]}) is None


def test_a_pre_payment_credit_note_counts_only_once_the_invoice_is_paid() -> None:
    note = {**load("credit_note_created_plexo")["data"]["object"], "type": "pre_payment"}
    assert credit_note_revenue(note, zone=UTC_ZONE, livemode=True, invoice_paid=False) == []
    (entry,) = credit_note_revenue(note, zone=UTC_ZONE, livemode=True, invoice_paid=True)
    assert entry.amount_minor == -2000
    void = {**note, "status": "void"}
    assert credit_note_revenue(void, zone=UTC_ZONE, livemode=True, invoice_paid=True) == []
