"""Stripe customers map to app customers; revenue moves with every change of mapping."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant, db_state
from tests.stripe_sync.helpers import deliver_ok, load, revenue_by


def test_unmapped_revenue_is_kept_under_the_stripe_id_and_moves_when_mapped(
    client: TestClient, tenant: Tenant
) -> None:
    deliver_ok(client, load("invoice_paid_unmapped"))
    # $124.00 over March (31 days, $4.00 a day), under the cus_ id: never dropped.
    assert revenue_by(client, tenant, "customer") == {
        "cus_QOrbitLabs0001": "124.00",
        "TOTAL": "124.00",
    }
    unmapped = client.get("/v1/stripe/customers?unmapped=true", headers=tenant.read)
    assert unmapped.status_code == 200
    assert unmapped.json() == {
        "currency": "usd",
        "customers": [
            {
                "stripe_customer_id": "cus_QOrbitLabs0001",
                "livemode": True,
                "name": "Orbit Labs",
                "email": "ap@orbit.example",
                "customer_id": "cus_QOrbitLabs0001",
                "mapping_source": "stripe_customer",
                "mapped": False,
                "revenue": "124.00",
            }
        ],
    }

    put = client.put(
        "/v1/stripe/mappings/cus_QOrbitLabs0001",
        json={"customer_id": " orbit-labs "},
        headers=tenant.admin,
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "stripe_customer_id": "cus_QOrbitLabs0001",
        "customer_id": "orbit-labs",
        "moved_entries": 1,
    }
    assert revenue_by(client, tenant, "customer") == {"orbit-labs": "124.00", "TOTAL": "124.00"}
    march_31 = client.get("/v1/pnl?from=2026-03-31&to=2026-03-31", headers=tenant.read).json()[
        "rows"
    ]
    assert [(r["key"], r["revenue"]) for r in march_31] == [("orbit-labs", "4.00")]
    assert client.get("/v1/stripe/customers?unmapped=true", headers=tenant.read).json() == {
        "currency": "usd",
        "customers": [],
    }
    mappings = client.get("/v1/stripe/mappings", headers=tenant.read).json()["mappings"]
    assert [(m["stripe_customer_id"], m["customer_id"]) for m in mappings] == [
        ("cus_QOrbitLabs0001", "orbit-labs")
    ]
    # Mapping again to the same customer moves nothing; a later invoice goes straight there.
    again = client.put(
        "/v1/stripe/mappings/cus_QOrbitLabs0001",
        json={"customer_id": "orbit-labs"},
        headers=tenant.admin,
    )
    assert again.json()["moved_entries"] == 0


def test_manual_mapping_wins_over_customer_metadata_over_subscription_metadata(
    client: TestClient, tenant: Tenant
) -> None:
    client.post("/v1/fx-rates", json={"currency": "jpy", "rate": "0.0067"}, headers=tenant.admin)
    for name in ("invoice_paid_plexo", "invoice_payment_paid_plexo", "refund_created_plexo"):
        deliver_ok(client, load(name))
    deliver_ok(client, load("refund_updated_plexo"))
    deliver_ok(client, load("invoice_paid_jpy"))
    assert revenue_by(client, tenant, "customer") == {
        "cus_QPlexoHealth01": "261.50",
        "kyoto-labs": "100.50",  # subscription metadata
        "TOTAL": "362.00",
    }

    # The customer's own metadata arrives: the invoice and its refund move together.
    deliver_ok(client, load("customer_created_plexo"))
    assert revenue_by(client, tenant, "customer")["plexo-health"] == "261.50"

    kyoto = load("customer_created_plexo")
    kyoto["id"] = "evt_1QKyotoCustUpdated01"
    kyoto["type"] = "customer.updated"
    kyoto["data"]["object"].update(
        id="cus_QKyotoLabs0001",
        name="Kyoto Labs K.K.",
        email="keiri@kyoto-labs.example",
        metadata={"margindash_customer_id": "kyoto-hq"},
    )
    deliver_ok(client, kyoto)  # customer metadata beats subscription metadata
    assert revenue_by(client, tenant, "customer") == {
        "kyoto-hq": "100.50",
        "plexo-health": "261.50",
        "TOTAL": "362.00",
    }

    put = client.put(
        "/v1/stripe/mappings/cus_QPlexoHealth01",
        json={"customer_id": "plexo"},
        headers=tenant.admin,
    )
    assert put.json()["moved_entries"] == 3  # two invoice lines and the refund
    renamed = load("customer_created_plexo")
    renamed.update(id="evt_1QPlexoCustUpdated01", type="customer.updated")
    renamed["created"] += 60
    renamed["data"]["object"]["metadata"] = {"margindash_customer_id": "plexo-health-2"}
    deliver_ok(client, renamed)  # the manual mapping still wins
    assert revenue_by(client, tenant, "customer")["plexo"] == "261.50"

    deleted = client.delete("/v1/stripe/mappings/cus_QPlexoHealth01", headers=tenant.admin)
    assert deleted.status_code == 200 and deleted.json()["moved_entries"] == 3
    assert revenue_by(client, tenant, "customer") == {
        "kyoto-hq": "100.50",
        "plexo-health-2": "261.50",
        "TOTAL": "362.00",
    }
    customers = client.get("/v1/stripe/customers", headers=tenant.read).json()["customers"]
    assert [(c["stripe_customer_id"], c["mapping_source"], c["revenue"]) for c in customers] == [
        ("cus_QKyotoLabs0001", "customer_metadata", "100.50"),
        ("cus_QPlexoHealth01", "customer_metadata", "261.50"),
    ]


def test_bad_mapping_requests_are_rejected_and_write_nothing(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    deliver_ok(client, load("invoice_paid_unmapped"))
    state = db_state(engine)
    cases = [
        ("/v1/stripe/mappings/acct_123", {"customer_id": "x"}, "stripe_customer_id"),
        ("/v1/stripe/mappings/cus_QOrbitLabs0001", {"customer_id": ""}, "customer_id"),
        ("/v1/stripe/mappings/cus_QOrbitLabs0001", {"customer_id": "   "}, "customer_id"),
        ("/v1/stripe/mappings/cus_QOrbitLabs0001", {"customer_id": "x" * 256}, "customer_id"),
        ("/v1/stripe/mappings/cus_QOrbitLabs0001", {}, "customer_id"),
    ]
    for path, body, field in cases:
        response = client.put(path, json=body, headers=tenant.admin)
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["error"]["details"][0]["field"] == field
        assert db_state(engine) == state
    response = client.put(
        "/v1/stripe/mappings/cus_QOrbitLabs0001", json={"customer_id": "x"}, headers=tenant.read
    )
    assert response.status_code == 403
    assert client.put("/v1/stripe/mappings/cus_QOrbitLabs0001", json={}).status_code == 401
    response = client.delete("/v1/stripe/mappings/cus_QOrbitLabs0001", headers=tenant.admin)
    assert response.status_code == 404
    assert db_state(engine) == state
    assert revenue_by(client, tenant, "customer")["cus_QOrbitLabs0001"] == "124.00"
