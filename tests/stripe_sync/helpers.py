"""Signed webhook deliveries, fixture events and P&L look-ups shared by the Stripe tests."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import httpx
import stripe
from fastapi.testclient import TestClient

from tests.conftest import Tenant

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "whsec_test5f3a9b7c2d1e4f6a8b0c9d7e"
OLD_SECRET = "whsec_test0a1b2c3d4e5f6a7b8c9d0e1f"
RANGE = {"from": "2026-01-01", "to": "2026-06-30"}


def load(name: str) -> dict[str, Any]:
    """A fixture event (a fresh copy each time: tests may change it)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return copy.deepcopy(data)


def signed(payload: str, secret: str = SECRET, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a delivery signed by the real stripe library, as Stripe signs them."""
    header = stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=timestamp or int(time.time())
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json; charset=utf-8"}


def deliver(
    client: TestClient,
    event: dict[str, Any],
    *,
    secret: str = SECRET,
    path: str = "/v1/stripe/webhook",
    timestamp: int | None = None,
) -> httpx.Response:
    """POST an event the way Stripe does: raw JSON body, Stripe-Signature header."""
    payload = json.dumps(event, indent=2)
    return client.post(path, content=payload, headers=signed(payload, secret, timestamp=timestamp))


def deliver_ok(client: TestClient, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = deliver(client, event, **kwargs)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pnl(client: TestClient, tenant: Tenant, **params: str) -> dict[str, Any]:
    response = client.get("/v1/pnl", params=params or RANGE, headers=tenant.read)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def revenue_by(client: TestClient, tenant: Tenant, group_by: str) -> dict[str, str]:
    """Revenue per customer or month over the test range, plus the total."""
    body = pnl(client, tenant, **RANGE, group_by=group_by)
    found = {row["key"]: row["revenue"] for row in body["rows"]}
    found["TOTAL"] = body["totals"]["revenue"]
    return found
