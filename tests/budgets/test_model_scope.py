"""Model budgets name the model as events are booked: a provider's spelling of it counts, and
the guard stops a call whatever spelling it uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from margindash.app import create_app
from margindash.config import Settings
from tests.budgets.conftest import settle, spend_events
from tests.conftest import Tenant, db_state

DATED = "gpt-4o-2024-08-06"  # the catalogue books it as gpt-4o


def model_budget(model: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "4o",
        "scope": {"type": "model", "value": model},
        "limit_usd": "5.00",
        "thresholds": [],
        **fields,
    }


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def spend(client: TestClient, tenant: Tenant, amount: str, *, prefix: str, model: str) -> None:
    events = [{**e, "model_name": model} for e in spend_events(amount, prefix=prefix)]
    response = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest)
    assert response.json()["accepted"] == len(events)
    settle(client)


@pytest.mark.parametrize("given", [DATED, "openai/gpt-4o", " GPT-4o "])
def test_a_model_budget_counts_every_spelling_of_its_model(
    app_client: TestClient, tenant: Tenant, given: str
) -> None:
    client = app_client
    created = client.post("/v1/budgets", json=model_budget(given), headers=tenant.admin)
    assert created.status_code == 201, created.text
    assert created.json()["scope"] == {"type": "model", "value": "gpt-4o"}
    spend(client, tenant, "1.00", prefix="dated", model=DATED)
    spend(client, tenant, "2.00", prefix="routed", model="openai/gpt-4o")
    spend(client, tenant, "4.00", prefix="mini", model="gpt-4o-mini-2024-07-18")
    budget = client.get(f"/v1/budgets/{created.json()['id']}", headers=tenant.read).json()
    assert budget["spent_usd"] == "3.00"


def test_replacing_a_budget_resolves_its_model_too(app_client: TestClient, tenant: Tenant) -> None:
    client = app_client
    created = client.post("/v1/budgets", json=model_budget("gpt-4o"), headers=tenant.admin)
    # Tokens that cost $1.00 on gpt-4o cost $0.06 on gpt-4o-mini.
    spend(client, tenant, "1.00", prefix="x", model="gpt-4o-mini-2024-07-18")
    replaced = client.put(
        f"/v1/budgets/{created.json()['id']}",
        json=model_budget("openai/gpt-4o-mini-2024-07-18"),
        headers=tenant.admin,
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["scope"]["value"] == "gpt-4o-mini"
    assert replaced.json()["spent_usd"] == "0.06"


def test_a_model_nothing_prices_is_kept_as_its_events_are_booked(
    app_client: TestClient, tenant: Tenant
) -> None:
    """Unpriced events are stored under their name trimmed and in lower case; once the org
    prices the model itself, its spend counts against a budget named in any case."""
    client = app_client
    created = client.post(
        "/v1/budgets", json=model_budget(" Acme-Llama-70B "), headers=tenant.admin
    )
    assert created.json()["scope"]["value"] == "acme-llama-70b"
    custom = {"model": "acme-llama-70b", "input_per_mtok": "0", "output_per_mtok": "10"}
    assert (
        client.post("/v1/pricing/overrides", json=custom, headers=tenant.admin).status_code == 201
    )
    spend(client, tenant, "2.00", prefix="llama", model="ACME-llama-70b")
    budget = client.get(f"/v1/budgets/{created.json()['id']}", headers=tenant.read).json()
    assert budget["spent_usd"] == "2.00"


def test_the_check_stops_every_spelling_of_an_exhausted_model(
    app_client: TestClient, tenant: Tenant
) -> None:
    client = app_client
    body = model_budget("gpt-4o", action="block")
    budget = client.post("/v1/budgets", json=body, headers=tenant.admin).json()
    spend(client, tenant, "6.00", prefix="over", model="gpt-4o")

    def check(model: str) -> dict[str, Any]:
        response = client.get("/v1/budgets/check", params={"model": model}, headers=tenant.ingest)
        assert response.status_code == 200, response.text
        return dict(response.json())

    for spelling in ("openai/gpt-4o", DATED, " GPT-4o", "azure/gpt-4o", "gpt-4o"):
        answer = check(spelling)
        assert answer["allowed"] is False, spelling
        assert answer["model"] == "gpt-4o"
        assert [b["budget_id"] for b in answer["blocked_by"]] == [budget["id"]]
    other = check("openai/gpt-4o-mini")
    assert (other["allowed"], other["model"]) == (True, "gpt-4o-mini")
    assert check("Mystery-Model")["model"] == "mystery-model"
    without = client.get("/v1/budgets/check?feature=chat", headers=tenant.ingest).json()
    assert without["model"] is None

    blocklist = client.get("/v1/budgets/blocklist", headers=tenant.ingest).json()
    assert [(r["type"], r["value"]) for r in blocklist["blocked"]] == [("model", "gpt-4o")]


def test_a_bad_model_check_is_refused_and_writes_nothing(
    app_client: TestClient, tenant: Tenant, engine: Any
) -> None:
    before = db_state(engine)
    response = app_client.get(
        "/v1/budgets/check", params={"model": "x" * 256}, headers=tenant.ingest
    )
    assert response.status_code == 422
    assert "model" in response.json()["error"]["message"]
    assert db_state(engine) == before
