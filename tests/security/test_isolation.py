"""Cross-org isolation on every operation: org B, with an admin key and org A's identifiers in
its URLs and bodies, never reads A's data (404 or empty) and never changes a row of A's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, select

from margindash.app import create_app
from tests.conftest import Tenant, make_tenant
from tests.security.operations import Operation, operations, safe_settings
from tests.test_cli_e2e import event

# Identifiers of A's data that B puts in its requests (they may be echoed back to B).
A_REQUEST, A_CUSTOMER, A_ALIAS, A_STRIPE_CUSTOMER = "req-a-1", "cust-a-1", "alias-a-1", "cus_a1"
# Values of A's data that B never sends: none may appear in an answer to B.
A_SECRETS = (
    "feature-a-secret",
    "model-a-secret",
    "meta-a-secret",
    "4242.42",
    "budget-a-secret",
    "custom-a-secret",
    "0.424242",
    "1.23456",
    "whsec_a_secret",
)


def seed_org_a(client: TestClient, a: Tenant) -> dict[str, str]:
    """Give A one of everything through the API; returns the ids B will aim at."""
    today = datetime.now(UTC).date()

    def ok(response: Any) -> dict[str, Any]:
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        return body

    headers = a.admin
    ok(client.post("/v1/fx-rates", json={"currency": "eur", "rate": "1.23456"}, headers=headers))
    alias = {"alias": A_ALIAS, "model": "gpt-4o", "provider": "openai"}
    ok(client.post("/v1/pricing/aliases", json=alias, headers=headers))
    override = ok(
        client.post(
            "/v1/pricing/overrides",
            json={
                "model": "custom-a-secret",
                "input_per_mtok": "0.424242",
                "output_per_mtok": "0.424242",
                "effective_from": "2020-01-01",
            },
            headers=headers,
        )
    )
    events = [
        event(
            A_REQUEST,
            customer_id=A_CUSTOMER,
            feature="feature-a-secret",
            model_name="model-a-secret",
            metadata={"note": "meta-a-secret"},
        ),
        event("req-a-2", customer_id=A_CUSTOMER, feature="feature-a-secret", model_name=A_ALIAS),
        event("req-a-3", customer_id="cust-a-2", model_name="custom-a-secret"),
    ]
    assert ok(client.post("/v1/usage", json={"events": events}, headers=headers))["accepted"] == 3
    revenue = {
        "revenue_id": "rev-a-1",
        "customer_id": A_CUSTOMER,
        "amount": "4242.42",
        "month": today.strftime("%Y-%m"),
    }
    ok(client.post("/v1/revenue", json=revenue, headers=headers))
    budget = ok(
        client.post(
            "/v1/budgets",
            json={
                "name": "budget-a-secret",
                "scope": {"type": "customer", "value": A_CUSTOMER},
                "period": "month",
                "limit_usd": "0.000001",
                "thresholds": [50],
                "action": "warn",
                "notify": {"emails": []},
            },
            headers=headers,
        )
    )
    mapping = {"customer_id": A_CUSTOMER}
    ok(client.put(f"/v1/stripe/mappings/{A_STRIPE_CUSTOMER}", json=mapping, headers=headers))
    settings = {"webhook_secrets": ["whsec_a_secret"], "mode": "test"}
    ok(client.put("/v1/stripe/settings", json=settings, headers=headers))
    aliases = ok(client.get("/v1/pricing/aliases", headers=headers))
    alias_ids = [str(a["id"]) for a in aliases["aliases"] if a["alias"] == A_ALIAS]
    # The budget is exceeded at once; wait for its alert so A's rows stop changing.
    deadline = time.monotonic() + 15
    while not ok(client.get("/v1/alerts", headers=headers))["alerts"]:
        assert time.monotonic() < deadline, "the budget alert never fired"
        time.sleep(0.1)
    return {
        "request_id": A_REQUEST,
        "customer_id": A_CUSTOMER,
        "model_name": A_ALIAS,
        "alias_id": alias_ids[0],
        "override_id": str(override["id"]),
        "budget_id": str(budget["id"]),
        "stripe_customer_id": A_STRIPE_CUSTOMER,
        "org_id": a.org.id,
        "kind": "negative_margin",
        "snapshot_id": "1",
    }


def org_rows(engine: Engine, org_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that has an `org_id`, for that org."""
    reflected = MetaData()
    reflected.reflect(engine)
    rows = {}
    with engine.connect() as conn:
        for table in reflected.sorted_tables:
            if "org_id" in table.c:
                query = select(table).where(table.c.org_id == org_id)
                rows[table.name] = sorted(tuple(map(repr, r)) for r in conn.execute(query))
    return rows


def b_request(op: Operation, a_ids: dict[str, str]) -> dict[str, Any]:
    """B's request for an operation, aimed at A's data wherever the operation takes an id."""
    today = datetime.now(UTC).date()
    query = {
        name: value
        for name, value in {
            "customer_id": A_CUSTOMER,
            "request_id": A_REQUEST,
            "from": str(today - timedelta(days=31)),
            "to": str(today),
        }.items()
        if name in op.query_names
    }
    bodies: dict[str, Any] = {
        "POST /v1/usage": event(A_REQUEST, customer_id=A_CUSTOMER),
        "POST /v1/usage/dry-run": event(A_REQUEST, customer_id=A_CUSTOMER, model_name=A_ALIAS),
        "POST /v1/revenue": {
            "revenue_id": "rev-a-1",
            "customer_id": A_CUSTOMER,
            "amount": "1.00",
            "month": today.strftime("%Y-%m"),
        },
        "POST /v1/fx-rates": {"currency": "eur", "rate": "9"},
        "POST /v1/pricing/aliases": {"alias": A_ALIAS, "model": "gpt-4o-mini"},
        "POST /v1/pricing/reprice": {"from": str(today - timedelta(days=31)), "to": str(today)},
        "PUT /v1/budgets/{budget_id}": {
            "name": "b-budget",
            "scope": {"type": "org"},
            "period": "month",
            "limit_usd": "1.00",
            "thresholds": [90],
            "action": "block",
            "notify": {"emails": []},
        },
        "PUT /v1/stripe/mappings/{stripe_customer_id}": {"customer_id": "cust-b-1"},
        "PATCH /v1/monitors/{kind}": {"enabled": False},
        "POST /v1/simulate": {"from": str(today - timedelta(days=31)), "to": str(today)},
    }
    request: dict[str, Any] = {"method": op.method, "url": op.url(a_ids), "params": query}
    if op.has_body:
        request["json"] = bodies.get(str(op), {})
    return request


@pytest.fixture
def isolation_client(database_url: str, tmp_path: Path) -> Any:
    with TestClient(create_app(safe_settings(database_url, tmp_path))) as client:
        yield client


def test_org_b_never_reads_or_changes_org_a_on_any_operation(
    isolation_client: TestClient, engine: Engine, tenant: Tenant
) -> None:
    client, a = isolation_client, tenant
    b = make_tenant(engine, "globex")
    a_ids = seed_org_a(client, a)
    a_before = org_rows(engine, a.org.id)
    assert all(a_before[t] for t in ("usage_events", "revenue_entries", "budgets", "alerts"))

    leaks: list[str] = []
    app_ops = operations(client.app)  # type: ignore[arg-type]
    # Reads first, so B has written nothing under A's identifiers yet.
    for op in sorted(app_ops, key=lambda op: op.method != "GET"):
        response = client.request(headers=b.admin, **b_request(op, a_ids))
        if response.status_code >= 500:
            leaks.append(f"{op}: {response.status_code}")
        elif response.status_code < 300:
            leaks += [f"{op} shows {s!r}" for s in A_SECRETS if s in response.text]
            if a.org.id in response.text:
                leaks.append(f"{op} shows A's org id")
    assert leaks == []
    assert org_rows(engine, a.org.id) == a_before

    # Of A's identifiers that B never wrote itself, B sees nothing.
    read = b.read
    assert client.get("/v1/usage/req-a-2", headers=read).status_code == 404
    assert client.get("/v1/customers/cust-a-2/pnl", headers=read).status_code == 404
    assert client.get("/v1/pnl?customer_id=cust-a-2", headers=read).json()["totals"]["events"] == 0
    for gone in (f"/v1/budgets/{a_ids['budget_id']}", f"/v1/pricing/aliases/{a_ids['alias_id']}"):
        assert client.delete(gone, headers=b.admin).status_code == 404
    price = client.get("/v1/models/custom-a-secret/price", headers=read).json()
    assert price["priced"] is False  # A's custom price is A's alone
    assert client.get("/v1/alerts", headers=read).json()["alerts"] == []
    assert org_rows(engine, a.org.id) == a_before
