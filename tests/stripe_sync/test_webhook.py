"""Only bodies signed by a configured secret, recently, are stored; failures write nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text

from margindash.app import create_app
from margindash.config import Settings
from margindash.db.tables import stripe_events
from tests.conftest import Tenant, db_state, make_tenant
from tests.stripe_sync.helpers import (
    OLD_SECRET,
    SECRET,
    deliver,
    deliver_ok,
    load,
    revenue_by,
    signed,
)


def assert_rejected(response: object, code: str, engine: Engine, state: dict[str, int]) -> None:
    assert getattr(response, "status_code", None) == 400, getattr(response, "text", response)
    assert response.json()["error"]["code"] == code  # type: ignore[attr-defined]
    assert db_state(engine) == state


def test_a_tampered_body_is_rejected_and_nothing_is_stored(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    state = db_state(engine)
    payload = json.dumps(load("invoice_paid_plexo"))
    headers = signed(payload)
    tampered = payload.replace('"amount": 28000', '"amount": 2800000')
    response = client.post("/v1/stripe/webhook", content=tampered, headers=headers)
    assert_rejected(response, "invalid_signature", engine, state)
    assert "matches none of the webhook secrets" in response.json()["error"]["message"]
    assert revenue_by(client, tenant, "month") == {"TOTAL": "0.00"}


def test_missing_or_malformed_signatures_are_rejected(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    state = db_state(engine)
    payload = json.dumps(load("invoice_paid_plexo"))
    for headers in (
        {"Content-Type": "application/json"},
        {"Stripe-Signature": "garbage"},
        {"Stripe-Signature": "t=1700000000"},
        {"Stripe-Signature": signed(payload, "whsec_someoneelse0000000000")["Stripe-Signature"]},
    ):
        response = client.post("/v1/stripe/webhook", content=payload, headers=headers)
        assert_rejected(response, "invalid_signature", engine, state)
    bad_bytes = b'{"id": "evt_\xff"}'
    response = client.post(
        "/v1/stripe/webhook",
        content=bad_bytes,
        headers={"Stripe-Signature": signed("x")["Stripe-Signature"]},
    )
    assert_rejected(response, "invalid_signature", engine, state)


def test_a_stale_timestamp_is_rejected_a_recent_one_accepted(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    state = db_state(engine)
    event = load("invoice_paid_plexo")
    response = deliver(client, event, timestamp=int(time.time()) - 301)
    assert_rejected(response, "invalid_signature", engine, state)
    assert "older than 300 s" in response.json()["error"]["message"]
    assert deliver_ok(client, event, timestamp=int(time.time()) - 290)["status"] == "processed"


def test_signed_bodies_that_are_not_events_are_rejected(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    state = db_state(engine)
    for payload in ("not json", "[]", json.dumps({"object": "event", "id": "nope"})):
        response = client.post("/v1/stripe/webhook", content=payload, headers=signed(payload))
        assert_rejected(response, "invalid_event", engine, state)
    event = load("invoice_paid_plexo")
    del event["data"]
    assert_rejected(deliver(client, event), "invalid_event", engine, state)
    far_future = {**load("invoice_paid_plexo"), "created": 10**13}  # year 318,857
    assert_rejected(deliver(client, far_future), "invalid_event", engine, state)


def test_a_rotated_secret_and_its_predecessor_are_both_accepted(
    database_url: str, engine: Engine
) -> None:
    tenant = make_tenant(engine, "acme")
    settings = Settings(
        database_url=database_url,
        stripe_webhook_secret=f" {SECRET} , {OLD_SECRET} ",
        stripe_api_key=None,
        default_org=None,
    )
    with TestClient(create_app(settings)) as client:
        assert deliver_ok(client, load("customer_created_plexo"), secret=OLD_SECRET)
        assert deliver_ok(client, load("invoice_paid_plexo"), secret=SECRET)
        state = db_state(engine)
        response = deliver(client, load("refund_created_plexo"), secret="whsec_retired000000000")
        assert_rejected(response, "invalid_signature", engine, state)
        assert revenue_by(client, tenant, "customer") == {
            "plexo-health": "307.80",
            "TOTAL": "307.80",
        }


def test_without_any_secret_nothing_is_accepted(database_url: str, engine: Engine) -> None:
    make_tenant(engine, "acme")
    settings = Settings(database_url=database_url, stripe_webhook_secret=None, stripe_api_key=None)
    with TestClient(create_app(settings)) as client:
        state = db_state(engine)
        response = deliver(client, load("invoice_paid_plexo"))
        assert_rejected(response, "invalid_signature", engine, state)
        assert "no webhook signing secret is configured" in response.json()["error"]["message"]


def test_per_org_endpoint_uses_the_org_secrets(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    beta = make_tenant(engine, "beta")
    beta_secret = "whsec_betaA1b2C3d4E5f6G7h8"
    path = f"/v1/stripe/webhook/{beta.org.id}"

    state = db_state(engine)
    bad = client.put(
        "/v1/stripe/settings", json={"webhook_secrets": ["sk_live_oops"]}, headers=beta.admin
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "webhook_secrets"
    assert db_state(engine) == state
    assert client.put("/v1/stripe/settings", json={}, headers=beta.read).status_code == 403

    put = client.put(
        "/v1/stripe/settings", json={"webhook_secrets": [beta_secret]}, headers=beta.admin
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "webhook_path": path,
        "default_org": False,
        "webhook_secrets": ["whsec_…G7h8"],
        "environment_secrets": [],
        "mode": "live",
        "mode_source": "environment",
    }
    # The default org's secret does not open another org's endpoint, and vice versa.
    state = db_state(engine)
    assert_rejected(
        deliver(client, load("invoice_paid_plexo"), path=path), "invalid_signature", engine, state
    )
    response = deliver(client, load("invoice_paid_plexo"), secret=beta_secret)
    assert_rejected(response, "invalid_signature", engine, state)

    assert deliver_ok(client, load("invoice_paid_plexo"), secret=beta_secret, path=path)
    assert revenue_by(client, beta, "month")["TOTAL"] == "307.80"
    assert revenue_by(client, tenant, "month")["TOTAL"] == "0.00"
    # The same event id is a different event for another org.
    assert deliver_ok(client, load("invoice_paid_plexo"))["status"] == "processed"
    assert revenue_by(client, tenant, "month")["TOTAL"] == "307.80"

    missing = deliver(client, load("invoice_paid_plexo"), path="/v1/stripe/webhook/org_missing")
    assert missing.status_code == 404


def test_the_default_org_setting_picks_the_org(database_url: str, engine: Engine) -> None:
    first = make_tenant(engine, "first")
    second = make_tenant(engine, "second")
    settings = Settings(
        database_url=database_url,
        stripe_webhook_secret=SECRET,
        stripe_api_key=None,
        default_org="second",
    )
    with TestClient(create_app(settings)) as client:
        deliver_ok(client, load("invoice_paid_plexo"))
        assert revenue_by(client, second, "month")["TOTAL"] == "307.80"
        assert revenue_by(client, first, "month")["TOTAL"] == "0.00"


def test_a_body_over_the_limit_is_refused(database_url: str, engine: Engine) -> None:
    make_tenant(engine, "acme")
    settings = Settings(
        database_url=database_url, stripe_webhook_secret=SECRET, max_body_bytes=4096
    )
    with TestClient(create_app(settings)) as client:
        state = db_state(engine)
        response = deliver(client, load("invoice_paid_plexo"))
        assert response.status_code == 413
        assert db_state(engine) == state


@contextmanager
def failing_inserts(engine: Engine, table: str) -> Iterator[None]:
    """Make every INSERT into `table` fail, as a full disk or a broken replica would."""
    name = f"md_test_fail_{table}"
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION md_test_fail() RETURNS trigger LANGUAGE plpgsql "
                    "AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION md_test_fail()"
                )
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            suffix = "" if engine.dialect.name == "sqlite" else f" ON {table}"
            conn.execute(text(f"DROP TRIGGER {name}{suffix}"))


def test_a_database_error_answers_503_and_writes_nothing(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    deliver_ok(client, load("customer_created_plexo"))
    state = db_state(engine)
    with failing_inserts(engine, "stripe_events"):
        response = deliver(client, load("invoice_paid_plexo"))
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert db_state(engine) == state

    # Failing half-way (the rollups): the raw event is kept, nothing else is written.
    with failing_inserts(engine, "daily_rollups"):
        response = deliver(client, load("invoice_paid_plexo"))
    assert response.status_code == 503, response.text
    after = db_state(engine)
    assert after == {**state, "stripe_events": state["stripe_events"] + 1}
    with engine.connect() as conn:
        row = conn.execute(
            select(stripe_events.c.status, stripe_events.c.last_error).where(
                stripe_events.c.event_id == "evt_1QPlexoInvoicePaid01"
            )
        ).one()
    assert row.status == "failed" and "disk full" in row.last_error

    # Stripe's retry applies it once the database is healthy again.
    assert deliver_ok(client, load("invoice_paid_plexo"))["status"] == "processed"
    assert revenue_by(client, tenant, "customer") == {"plexo-health": "307.80", "TOTAL": "307.80"}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(stripe_events)).scalar() == 2
