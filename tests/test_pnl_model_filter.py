"""The P&L's model filter names the model as events are booked: a provider's spelling of it
finds the model's spend, and the answer says which model that was."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant, db_state

MONTH = "2026-02"


def event(request_id: str, model: str, *, customer: str = "acct_1", day: str = "14") -> Any:
    return {
        "request_id": request_id,
        "customer_id": customer,
        "model_name": model,
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "feature": "chat",
        "timestamp": f"{MONTH}-{day}T12:00:00Z",
    }


def ingest(client: TestClient, tenant: Tenant, events: list[dict[str, Any]]) -> None:
    body = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).json()
    assert body["accepted"] == len(events), body


def pnl(client: TestClient, tenant: Tenant, **params: str) -> dict[str, Any]:
    response = client.get("/v1/pnl", params=params, headers=tenant.read)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    "given", ["gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini", "GPT-4o-mini ", "gpt-4o-mini"]
)
def test_the_model_filter_finds_every_spelling_of_its_model(
    client: TestClient, tenant: Tenant, given: str
) -> None:
    ingest(
        client,
        tenant,
        [
            event("dated", "gpt-4o-mini-2024-07-18"),
            event("routed", "openai/gpt-4o-mini", customer="acct_2"),
            event("other", "gpt-4o"),
        ],
    )
    everything = pnl(client, tenant, month=MONTH, group_by="model")
    assert "model" not in everything  # echoed only when filtering
    mini = next(row for row in everything["rows"] if row["key"] == "gpt-4o-mini")
    for group_by in ("customer", "model", "day", "month", "feature"):
        body = pnl(client, tenant, month=MONTH, group_by=group_by, model=given)
        assert body["model"] == "gpt-4o-mini", group_by
        assert (body["totals"]["events"], body["totals"]["cost"]) == (2, mini["cost"]), group_by
    by_customer = pnl(client, tenant, month=MONTH, model=given, customer_id="acct_2")
    assert [row["key"] for row in by_customer["rows"]] == ["acct_2"]


def test_a_model_nothing_prices_is_filtered_as_it_is_stored(
    client: TestClient, tenant: Tenant
) -> None:
    ingest(client, tenant, [event("mystery", "Mystery-Model")])
    body = pnl(client, tenant, month=MONTH, group_by="model", model=" MYSTERY-model")
    assert body["model"] == "mystery-model"
    assert [(r["key"], r["unpriced_events"]) for r in body["rows"]] == [("mystery-model", 1)]


def test_an_alias_is_resolved_as_on_the_reports_last_day(
    client: TestClient, tenant: Tenant
) -> None:
    """A deployment name repointed to another model: each month's report finds the model the
    name stood for then, under which that month's events were booked."""
    for model, since in (("gpt-4o", "2026-01-01"), ("gpt-4o-mini", "2026-03-01")):
        alias = {"alias": "prod-chat", "model": model, "effective_from": since}
        response = client.post("/v1/pricing/aliases", json=alias, headers=tenant.admin)
        assert response.status_code == 201, response.text
    ingest(
        client,
        tenant,
        [
            event("feb", "prod-chat"),
            {**event("mar", "prod-chat"), "timestamp": "2026-03-10T12:00:00Z"},
        ],
    )
    february = pnl(client, tenant, month=MONTH, group_by="model", model="prod-chat")
    assert february["model"] == "gpt-4o"
    assert [(r["key"], r["events"]) for r in february["rows"]] == [("gpt-4o", 1)]
    march = pnl(client, tenant, month="2026-03", group_by="model", model="prod-chat")
    assert march["model"] == "gpt-4o-mini"
    assert [(r["key"], r["events"]) for r in march["rows"]] == [("gpt-4o-mini", 1)]


def test_a_model_filter_too_long_is_refused_and_writes_nothing(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    response = client.get("/v1/pnl", params={"model": "x" * 256}, headers=tenant.read)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "model"
    assert db_state(engine) == before
