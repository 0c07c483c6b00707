"""Backfill, reconciliation and verification against a local stand-in for Stripe's API.

The stand-in answers one object per page, so every listing exercises auto-pagination.
Backfilled objects: the Plexo customer and invoice ($307.80 net), its invoice payment, a $50.00
refund (-$46.30 without tax), a credit note of $20.00 refunded with tax ($21.60 refund, covered
by the note), and an unmapped Orbit invoice ($124.00 in March).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.app import create_app
from margindash.config import Settings
from margindash.jobs.scheduler import JobContext
from margindash.stripe_sync.backfill import backfill
from margindash.stripe_sync.jobs import reconcile
from margindash.stripe_sync.verify import verify_invoices
from tests.conftest import Tenant, db_state
from tests.stripe_sync.fake_stripe import FakeStripe, serve
from tests.stripe_sync.helpers import SECRET, deliver_ok, load, revenue_by

KEY = "rk_live_51QAcmeReadOnlyKey"
MONTHS = {
    "2026-01": "30.60",
    "2026-02": "151.20",
    "2026-03": "183.70",
    "TOTAL": "365.50",
}
CUSTOMERS = {"plexo-health": "241.50", "cus_QOrbitLabs0001": "124.00", "TOTAL": "365.50"}
WEBHOOKS = (
    "customer_created_plexo",
    "invoice_paid_plexo",
    "invoice_payment_paid_plexo",
    "refund_created_plexo",
    "refund_updated_plexo",
    "refund_created_credit_note_plexo",
    "credit_note_created_plexo",
    "invoice_paid_unmapped",
)


def stripe_object(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = load(name)["data"]["object"]
    return obj


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with serve(FakeStripe(api_key=KEY)) as running:
        running.add("customers", stripe_object("customer_created_plexo"))
        running.add(
            "invoices", stripe_object("invoice_paid_plexo"), stripe_object("invoice_paid_unmapped")
        )
        running.add("credit_notes", stripe_object("credit_note_created_plexo"))
        running.add(
            "refunds",
            stripe_object("refund_updated_plexo"),
            stripe_object("refund_created_credit_note_plexo"),
        )
        running.add("invoice_payments", stripe_object("invoice_payment_paid_plexo"))
        yield running


@pytest.fixture
def stripe_api(fake: FakeStripe) -> stripe.StripeClient:
    return stripe.StripeClient(api_key=KEY, base_addresses={"api": fake.url}, max_network_retries=0)


@pytest.fixture
def api_settings(database_url: str, fake: FakeStripe) -> Settings:
    return Settings(
        database_url=database_url,
        stripe_webhook_secret=SECRET,
        stripe_api_key=KEY,
        stripe_api_base=fake.url,
        default_org=None,
        stripe_reconcile_days=400,
    )


def test_backfill_books_like_webhooks_and_replays_change_nothing(
    client: TestClient,
    tenant: Tenant,
    engine: Engine,
    api_settings: Settings,
    stripe_api: stripe.StripeClient,
    fake: FakeStripe,
) -> None:
    seen: list[tuple[str, int]] = []
    report = backfill(
        engine,
        settings=api_settings,
        org=tenant.org,
        client=stripe_api,
        since=date(2026, 1, 1),
        on_progress=lambda resource, count: seen.append((resource, count)),
    )
    assert report.objects == {"customers": 1, "invoices": 2, "credit_notes": 1, "refunds": 2}
    assert report.resumed == []
    assert seen[-1] == ("refunds", 2)
    assert revenue_by(client, tenant, "month") == MONTHS
    assert revenue_by(client, tenant, "customer") == CUSTOMERS
    # Invoices were read paid-only, from the first day on, one page at a time.
    invoice_queries = [q for path, q in fake.requests if path == "/v1/invoices"]
    assert invoice_queries[0]["status"] == "paid"
    assert invoice_queries[0]["created[gte]"] == "1767225600"  # 2026-01-01T00:00:00Z
    assert invoice_queries[1]["starting_after"] == "in_1QOrbitInv00001"

    # Every webhook for the same objects arrives afterwards (Stripe retries, or a replay).
    state = db_state(engine)
    for name in WEBHOOKS:
        assert deliver_ok(client, load(name))["status"] in ("processed", "queued")
    assert revenue_by(client, tenant, "month") == MONTHS
    assert {k: v for k, v in db_state(engine).items() if k != "stripe_events"} == {
        k: v for k, v in state.items() if k != "stripe_events"
    }

    # A second backfill of the same period changes nothing.
    again = backfill(
        engine, settings=api_settings, org=tenant.org, client=stripe_api, since=date(2026, 1, 1)
    )
    assert again.changed_entries == 0
    assert revenue_by(client, tenant, "month") == MONTHS


def test_backfill_after_webhooks_changes_nothing(
    client: TestClient,
    tenant: Tenant,
    engine: Engine,
    api_settings: Settings,
    stripe_api: stripe.StripeClient,
) -> None:
    for name in WEBHOOKS:
        deliver_ok(client, load(name))
    assert revenue_by(client, tenant, "month") == MONTHS
    report = backfill(
        engine, settings=api_settings, org=tenant.org, client=stripe_api, since=date(2026, 1, 1)
    )
    assert report.changed_entries == 0
    assert revenue_by(client, tenant, "customer") == CUSTOMERS


def test_an_interrupted_backfill_resumes_where_it_stopped(
    client: TestClient,
    tenant: Tenant,
    engine: Engine,
    api_settings: Settings,
    stripe_api: stripe.StripeClient,
    fake: FakeStripe,
) -> None:
    failures = iter([True])

    def second_invoice_page_fails_once(path: str, query: dict[str, str]) -> bool:
        if path == "/v1/invoices" and query.get("starting_after") == "in_1QOrbitInv00001":
            return next(failures, False)
        return False

    fake.fail = second_invoice_page_fails_once
    with pytest.raises(stripe.APIError):
        backfill(
            engine, settings=api_settings, org=tenant.org, client=stripe_api, since=date(2026, 1, 1)
        )
    assert revenue_by(client, tenant, "customer") == {
        "cus_QOrbitLabs0001": "124.00",
        "TOTAL": "124.00",
    }
    fake.requests.clear()
    report = backfill(
        engine, settings=api_settings, org=tenant.org, client=stripe_api, since=date(2026, 1, 1)
    )
    assert report.resumed == ["invoices"]
    assert report.objects["invoices"] == 1  # only what was left
    first_invoice_query = next(q for path, q in fake.requests if path == "/v1/invoices")
    assert first_invoice_query["starting_after"] == "in_1QOrbitInv00001"
    assert revenue_by(client, tenant, "month") == MONTHS


def test_daily_reconciliation_and_lines_beyond_the_first_page(
    database_url: str,
    tenant: Tenant,
    engine: Engine,
    api_settings: Settings,
    fake: FakeStripe,
) -> None:
    reconcile(JobContext(settings=api_settings, engine=engine))
    big = load("invoice_paid_many_lines")
    fake.lines["in_1QPlexoInvBig001"] = load("invoice_lines_many")["data"]
    with TestClient(create_app(api_settings)) as client:
        assert revenue_by(client, tenant, "month") == MONTHS
        # The event carries one of three lines: the rest are fetched after answering.
        assert deliver_ok(client, big)["status"] == "queued"
        assert revenue_by(client, tenant, "month")["2026-04"] == "60.00"
        line_requests = [q for p, q in fake.requests if p.endswith("/lines")]
        assert len(line_requests) == 3  # one line per page
    without_key = Settings(database_url=database_url, stripe_webhook_secret=SECRET)
    with TestClient(create_app(without_key)) as client:
        event = {**big, "id": "evt_1QPlexoInvBigPaid02"}
        body = deliver_ok(client, event)
        assert body["status"] == "failed"
        assert "set STRIPE_API_KEY" in body["message"]
        assert revenue_by(client, tenant, "month")["2026-04"] == "60.00"


def test_verify_shows_mapping_and_amounts_without_writing(
    client: TestClient,
    tenant: Tenant,
    engine: Engine,
    api_settings: Settings,
    stripe_api: stripe.StripeClient,
) -> None:
    state = db_state(engine)
    checks = verify_invoices(
        engine, settings=api_settings, org=tenant.org, last=5, client=stripe_api
    )
    assert db_state(engine) == state
    assert [
        (c.invoice_id, c.customer_id, c.source, c.name, c.expected_nanos, c.state) for c in checks
    ] == [
        (
            "in_1QOrbitInv00001",
            "cus_QOrbitLabs0001",
            "stripe_customer",
            "Orbit Labs",
            124_000_000_000,
            "not booked",
        ),
        (
            "in_1QPlexoInv00001",
            "plexo-health",
            "customer_metadata",
            "Plexo Health",
            307_800_000_000,
            "not booked",
        ),
    ]
    plexo = checks[1]
    assert (plexo.total_minor, plexo.tax_minor) == (33242, 2462)
    assert [(line.amount_minor, str(line.start), str(line.end)) for line in plexo.lines] == [
        (5580, "2026-01-15", "2026-02-14"),
        (25200, "2026-02-15", "2026-03-14"),
    ]
    deliver_ok(client, load("invoice_paid_plexo"))
    stored = verify_invoices(engine, settings=api_settings, org=tenant.org, last=5)
    assert [(c.invoice_id, c.source, c.state) for c in stored] == [
        ("in_1QPlexoInv00001", "stripe_customer", "booked")
    ]


MARGINDASH = str(Path(sys.executable).parent / "margindash")


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MARGINDASH, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_backfill_verify_map_and_pnl(sqlite_url: str, fake: FakeStripe) -> None:
    # One engine is enough here: the functions behind each command run on both above.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MARGINDASH_", "STRIPE_"))}
    env.update(
        MARGINDASH_DATABASE_URL=sqlite_url,
        STRIPE_API_KEY=KEY,
        MARGINDASH_STRIPE_API_BASE=fake.url,
        COLUMNS="220",
    )
    assert run_cli(env, "init", "--org", "acme", "--json").returncode == 0

    done = run_cli(env, "stripe", "backfill", "--since", "2026-01-01")
    assert done.returncode == 0, done.stderr
    assert "1 customers, 2 invoices, 1 credit notes, 2 refunds" in done.stdout

    verify = run_cli(env, "stripe", "verify", "--last", "5")
    assert verify.returncode == 0, verify.stderr
    assert "PLX-0001" in verify.stdout and "plexo-health" in verify.stdout
    assert "332.42 USD" in verify.stdout and "307.80" in verify.stdout
    assert verify.stdout.count("booked") >= 2

    unmapped = run_cli(env, "stripe", "customers", "--unmapped")
    assert "cus_QOrbitLabs0001" in unmapped.stdout and "ap@orbit.example" in unmapped.stdout

    mapped = run_cli(env, "stripe", "map", "cus_QOrbitLabs0001", "acct_123")
    assert mapped.returncode == 0, mapped.stderr
    assert "cus_QOrbitLabs0001 → acct_123 (1 entries moved)" in mapped.stdout
    bad = run_cli(env, "stripe", "map", "acct_123", "x")
    assert bad.returncode == 2 and "stripe_customer_id" in bad.stderr

    pnl = run_cli(env, "pnl", "--month", "2026-03", "--format", "json")
    assert pnl.returncode == 0, pnl.stderr
    body = json.loads(pnl.stdout)
    assert body["totals"]["revenue"] == "183.70"
    assert {row["key"]: row["revenue"] for row in body["rows"]} == {
        "acct_123": "124.00",
        "plexo-health": "59.70",
    }

    configured = run_cli(
        env, "stripe", "configure", "--secret", "whsec_newA1b2C3d4", "--secret", "whsec_oldZ9y8X7w6"
    )
    assert configured.returncode == 0, configured.stderr
    assert "whsec_…C3d4, whsec_…X7w6" in configured.stdout

    replay = run_cli(env, "stripe", "replay")
    assert replay.returncode == 0 and "nothing to do" in replay.stdout
    no_key = {**env, "STRIPE_API_KEY": ""}
    refused = run_cli(no_key, "stripe", "backfill", "--since", "2026-01-01")
    assert refused.returncode == 2 and "STRIPE_API_KEY" in refused.stderr
