"""Signed webhook events become revenue in GET /v1/pnl, to the cent, exactly once.

The Plexo invoice (fixtures/invoice_paid_plexo.json) has two lines, each over two months, with a
10% discount and 8% exclusive tax:
- usage $62.00 - $6.20 = $55.80 over Jan 15 - Feb 14 (31 days, $1.80 a day):
  Jan 17 days $30.60, Feb 14 days $25.20;
- Pro $280.00 - $28.00 = $252.00 over Feb 15 - Mar 14 (28 days, $9.00 a day):
  Feb $126.00, Mar $126.00.
Net $307.80 of a $332.42 total (tax $24.62).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from margindash.config import Settings
from margindash.db.tables import revenue_entries, stripe_events, stripe_objects
from margindash.jobs.scheduler import JobContext
from margindash.stripe_sync.jobs import retry_events
from tests.conftest import Tenant, db_state
from tests.stripe_sync.helpers import deliver_ok, load, pnl, revenue_by

PLEXO_MONTHS = {"2026-01": "30.60", "2026-02": "151.20", "2026-03": "126.00", "TOTAL": "307.80"}


def deliver_all(client: TestClient, *names: str) -> list[dict[str, Any]]:
    return [deliver_ok(client, load(name)) for name in names]


def test_paid_invoice_with_discount_and_tax_books_each_line_over_its_period(
    client: TestClient, tenant: Tenant
) -> None:
    body = deliver_ok(client, load("customer_created_plexo"))
    assert body["status"] == "queued"  # re-mapping may be long: applied after answering
    body = deliver_ok(client, load("invoice_paid_plexo"))
    assert body == {
        "received": True,
        "event_id": "evt_1QPlexoInvoicePaid01",
        "type": "invoice.paid",
        "status": "processed",
        "message": None,
    }
    assert revenue_by(client, tenant, "month") == PLEXO_MONTHS
    feb = pnl(client, tenant, month="2026-02")
    assert [(r["key"], r["revenue"]) for r in feb["rows"]] == [("plexo-health", "151.20")]
    jan_days = pnl(client, tenant, **{"from": "2026-01-14", "to": "2026-01-15"}, group_by="day")
    assert [(r["key"], r["revenue"]) for r in jan_days["rows"]] == [("2026-01-15", "1.80")]
    # The same payment's invoice.payment_succeeded is never booked as well.
    assert deliver_ok(client, load("invoice_payment_succeeded_plexo"))["status"] == "ignored"
    assert revenue_by(client, tenant, "month") == PLEXO_MONTHS


def test_a_negative_proration_line_is_spread_over_its_own_period(
    client: TestClient, tenant: Tenant
) -> None:
    event = load("invoice_paid_plexo")
    lines = event["data"]["object"]["lines"]["data"]
    credit = copy.deepcopy(lines[1])
    credit.update(
        id="il_1QPlexoProration1",
        amount=-5000,
        subtotal=-5000,
        description="Unused time on Pro after 20 Feb 2026",
        discountable=False,
        discount_amounts=[],
        discounts=[],
        pretax_credit_amounts=[],
        taxes=[],
        period={"start": unix("2026-02-20"), "end": unix("2026-03-15")},
    )
    credit["parent"]["subscription_item_details"]["proration"] = True
    lines.append(credit)
    deliver_ok(client, load("customer_created_plexo"))
    deliver_ok(client, event)
    # -$50.00 over Feb 20 - Mar 14 (23 days): Feb 9 days, Mar 14 days, exact to the nano.
    assert revenue_by(client, tenant, "month") == {
        "2026-01": "30.60",
        "2026-02": "131.63",
        "2026-03": "95.57",
        "TOTAL": "257.80",
    }


def unix(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def test_refund_next_month_reduces_revenue_without_its_tax(
    client: TestClient, tenant: Tenant
) -> None:
    deliver_all(
        client,
        "customer_created_plexo",
        "invoice_paid_plexo",
        "invoice_payment_paid_plexo",
        "refund_created_plexo",
    )
    assert revenue_by(client, tenant, "month")["2026-03"] == "126.00"  # pending: nothing yet
    deliver_all(client, "refund_updated_plexo")
    # $50.00 refunded of $332.42 paid, of which $307.80 revenue: 5000 x 30780 / 33242 = 4630.
    assert revenue_by(client, tenant, "month") == {
        "2026-01": "30.60",
        "2026-02": "151.20",
        "2026-03": "79.70",
        "TOTAL": "261.50",
    }
    march_10 = pnl(client, tenant, **{"from": "2026-03-10", "to": "2026-03-10"})
    assert march_10["totals"]["revenue"] == "-37.30"  # $9.00 of Pro minus the $46.30 refund


def test_credit_note_with_its_refund_counts_once_and_a_voided_one_not_at_all(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    deliver_all(
        client,
        "customer_created_plexo",
        "invoice_paid_plexo",
        "invoice_payment_paid_plexo",
        # The card refund arrives before the credit note that caused it.
        "refund_created_credit_note_plexo",
        "credit_note_created_plexo",
        "credit_note_created_plexo_2",
    )
    # $20.00 credited ($21.60 with tax, refunded to the card), $10.00 credited.
    assert revenue_by(client, tenant, "month")["2026-03"] == "96.00"
    deliver_all(client, "credit_note_voided_plexo_2")
    months = revenue_by(client, tenant, "month")
    assert (months["2026-03"], months["TOTAL"]) == ("106.00", "287.80")
    march_20 = pnl(client, tenant, **{"from": "2026-03-20", "to": "2026-03-20"})
    assert march_20["totals"]["revenue"] == "-20.00"  # the credit note's day, once
    with engine.connect() as conn:
        ids = set(conn.execute(select(revenue_entries.c.revenue_id)).scalars())
    assert "stripe:live:cn_1QPlexoCredit001" in ids
    assert "stripe:live:re_1QPlexoRefund002" not in ids  # fully covered by the credit note


def test_duplicate_deliveries_count_once(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    names = ("customer_created_plexo", "invoice_paid_plexo", "invoice_payment_paid_plexo")
    deliver_all(client, *names)
    deliver_all(client, "refund_created_plexo", "refund_updated_plexo")
    before = revenue_by(client, tenant, "month")
    state = db_state(engine)
    for name in (*names, "refund_created_plexo", "refund_updated_plexo"):
        assert deliver_ok(client, load(name))["status"] == "duplicate"
    assert revenue_by(client, tenant, "month") == before
    assert db_state(engine) == state
    with engine.connect() as conn:
        rows = conn.execute(select(stripe_events.c.api_version, stripe_events.c.status)).all()
    assert rows == [("2026-10-28.endive", "processed")] * 5  # each event once, version kept


def test_out_of_order_delivery_gives_the_same_totals(client: TestClient, tenant: Tenant) -> None:
    deliver_all(
        client,
        "refund_updated_plexo",  # succeeded, before we know the invoice or the refund exists
        "refund_created_plexo",  # older (pending): must not undo the refund
        "credit_note_voided_plexo_2",  # voided before it was created
        "credit_note_created_plexo_2",
        "invoice_payment_paid_plexo",
        "invoice_paid_plexo",
        "customer_created_plexo",  # the mapping arrives last and moves everything
    )
    assert revenue_by(client, tenant, "customer") == {"plexo-health": "261.50", "TOTAL": "261.50"}
    assert revenue_by(client, tenant, "month")["2026-03"] == "79.70"


def test_charge_without_invoice_and_its_lost_dispute(client: TestClient, tenant: Tenant) -> None:
    deliver_all(client, "customer_created_plexo", "charge_succeeded_one_off_plexo")
    assert revenue_by(client, tenant, "month") == {"2026-03": "25.00", "TOTAL": "25.00"}
    # A later update of the lost dispute arrives before the event that closed it.
    later = load("dispute_closed_lost_plexo")
    later.update(id="evt_1QPlexoDisputeUpdated1", type="charge.dispute.updated")
    later["created"] += 18 * 86400
    later["data"]["object"]["metadata"] = {"case": "closed-by-bank"}
    deliver_ok(client, later)
    deliver_all(client, "dispute_closed_lost_plexo")
    assert revenue_by(client, tenant, "month") == {
        "2026-03": "25.00",
        "2026-04": "-25.00",
        "TOTAL": "0.00",
    }
    lost_on = pnl(client, tenant, **{"from": "2026-04-01", "to": "2026-04-30"}, group_by="day")
    assert [(r["key"], r["revenue"]) for r in lost_on["rows"]] == [("2026-04-02", "-25.00")]
    # The dispute names the charge, not the customer: the customer's revenue still counts it.
    customers = client.get("/v1/stripe/customers", headers=tenant.read).json()["customers"]
    assert [(c["stripe_customer_id"], c["revenue"]) for c in customers] == [
        ("cus_QPlexoHealth01", "0.00")
    ]


def test_a_charge_that_paid_an_invoice_is_not_counted_twice(
    client: TestClient, tenant: Tenant
) -> None:
    # charge.succeeded usually arrives first: booked until the invoice payment says otherwise.
    deliver_all(client, "customer_created_plexo", "charge_succeeded_invoice_plexo")
    assert revenue_by(client, tenant, "month")["TOTAL"] == "332.42"
    deliver_all(client, "invoice_payment_paid_plexo", "invoice_paid_plexo")
    assert revenue_by(client, tenant, "month") == PLEXO_MONTHS
    assert deliver_ok(client, load("charge_succeeded_invoice_plexo"))["status"] == "duplicate"
    assert revenue_by(client, tenant, "month") == PLEXO_MONTHS


def test_zero_decimal_currency_waits_for_its_fx_rate(
    client: TestClient, tenant: Tenant, engine: Engine, settings: Settings
) -> None:
    body = deliver_ok(client, load("invoice_paid_jpy"))
    assert body["status"] == "failed"
    assert "no FX rate from jpy to usd" in body["message"]
    assert revenue_by(client, tenant, "month") == {"TOTAL": "0.00"}
    events = client.get("/v1/stripe/events?status=failed", headers=tenant.read).json()["events"]
    assert [e["event_id"] for e in events] == ["evt_1QKyotoInvoicePaid01"]

    rate = client.post(
        "/v1/fx-rates", json={"currency": "jpy", "rate": "0.0067"}, headers=tenant.admin
    )
    assert rate.status_code == 200
    retry_events(JobContext(settings=settings, engine=engine))  # the scheduler's retry job
    # ¥15,000 (no minor unit) x 0.0067 = $100.50, over Feb 1 - Feb 28, by subscription metadata.
    assert revenue_by(client, tenant, "customer") == {"kyoto-labs": "100.50", "TOTAL": "100.50"}
    with engine.connect() as conn:
        row = conn.execute(select(revenue_entries)).one()
    assert (row.amount_minor, row.currency, row.fx_rate, row.amount_nanos) == (
        15000,
        "jpy",
        "0.0067",
        100_500_000_000,
    )
    # A later rate change does not re-price revenue already booked, even on replay.
    client.post("/v1/fx-rates", json={"currency": "jpy", "rate": "0.0070"}, headers=tenant.admin)
    assert deliver_ok(client, load("invoice_paid_jpy"))["status"] == "duplicate"
    assert revenue_by(client, tenant, "customer")["TOTAL"] == "100.50"


def test_test_mode_events_are_kept_apart_from_live(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    event = load("invoice_paid_plexo")
    event["id"] = "evt_1QTestInvoicePaid01"
    event["livemode"] = False
    invoice = event["data"]["object"]
    invoice["livemode"] = False
    for line in invoice["lines"]["data"]:
        line["livemode"] = False
    body = deliver_ok(client, event)
    assert body["status"] == "processed"
    assert body["message"] == "test-mode event stored; this org books live-mode revenue"
    assert revenue_by(client, tenant, "month") == {"TOTAL": "0.00"}
    with engine.connect() as conn:
        modes = conn.execute(select(stripe_objects.c.livemode)).scalars().all()
    assert modes == [False]

    # The same ids in live mode are different objects: booked, and not mixed with test mode.
    deliver_ok(client, load("invoice_paid_plexo"))
    assert revenue_by(client, tenant, "month")["TOTAL"] == "307.80"

    # Switching the org to test mode (a staging setup) re-books at once: only test mode counts.
    put = client.put("/v1/stripe/settings", json={"mode": "test"}, headers=tenant.admin)
    assert put.status_code == 200, put.text
    assert (put.json()["mode"], put.json()["mode_source"]) == ("test", "org")
    assert revenue_by(client, tenant, "customer") == {
        "cus_QPlexoHealth01": "307.80",
        "TOTAL": "307.80",
    }
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(revenue_entries.c.revenue_id)).scalars())
    assert ids == [
        "stripe:test:in_1QPlexoInv00001:il_1QPlexoPro00001",
        "stripe:test:in_1QPlexoInv00001:il_1QPlexoUsage0001",
    ]


def test_unknown_event_types_are_acknowledged_and_not_stored(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    state = db_state(engine)
    assert deliver_ok(client, load("payment_intent_created"))["status"] == "ignored"
    assert db_state(engine) == state


def test_an_impossible_date_in_an_object_fails_the_event_not_the_server(
    client: TestClient, tenant: Tenant, engine: Engine, settings: Settings
) -> None:
    """A signed event whose invoice line starts in year 31,690,708 cannot be booked: it is
    stored as failed, with the reason, and the retry job goes on to the other events."""
    broken = load("invoice_paid_plexo")
    broken["data"]["object"]["lines"]["data"][0]["period"]["start"] = 10**15
    body = deliver_ok(client, broken)
    assert body["status"] == "failed" and "not a Unix timestamp" in body["message"]
    assert revenue_by(client, tenant, "month") == {"TOTAL": "0.00"}
    jpy = deliver_ok(client, load("invoice_paid_jpy"))
    assert jpy["status"] == "failed"  # no FX rate yet
    client.post("/v1/fx-rates", json={"currency": "jpy", "rate": "0.0067"}, headers=tenant.admin)
    retry_events(JobContext(settings=settings, engine=engine))
    assert revenue_by(client, tenant, "customer") == {"kyoto-labs": "100.50", "TOTAL": "100.50"}
