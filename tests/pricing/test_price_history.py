"""Effective dating: an event costs what the price in force at its timestamp says, and a price
change applies from its effective date without rewriting what is stored."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.service import Pricer
from margindash.pricing.sync import sync_prices
from tests.conftest import Tenant
from tests.pricing.payloads import CatalogueServer, add_model, catalogue_doc, set_price

NOW = datetime.now(UTC).replace(microsecond=0)
V1_AT = NOW - timedelta(days=10)
V2_AT = NOW - timedelta(days=5)


def usage(request_id: str, at: datetime, model: str = "gpt-3.5-turbo") -> dict[str, Any]:
    return {
        "request_id": request_id,
        "customer_id": "acct_1",
        "model_name": model,
        "prompt_tokens": 1_000_000,
        "completion_tokens": 0,
        "timestamp": at.isoformat(),
    }


def cost_of(client: TestClient, tenant: Tenant, request_id: str) -> str | None:
    stored = client.get(f"/v1/usage/{request_id}", headers=tenant.read).json()
    cost: str | None = stored["cost_usd"]
    return cost


def ingest(client: TestClient, tenant: Tenant, event: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/usage", json=event, headers=tenant.ingest)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


def sync_at(client: TestClient, engine: Engine, server: CatalogueServer, at: datetime) -> None:
    result = sync_prices(engine, source=server.url, triggered_by="test", now=at)
    assert result.status == "success", result.error
    # The app's pricer re-reads the catalogue every 30 s; a test does not wait for that.
    client.app.state.services.pricer.reload()  # type: ignore[attr-defined]


def test_each_event_costs_the_price_in_force_at_its_timestamp(
    client: TestClient, engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    sync_at(client, engine, prices_server, V1_AT)
    before_v2 = ingest(client, tenant, usage("before-v2", NOW - timedelta(days=7)))
    assert before_v2["cost_usd"] == "0.50"

    cheaper = catalogue_doc()
    set_price(cheaper, "openai", "gpt-3.5-turbo", "input_mtok", 0.45)
    prices_server.serve(cheaper)
    sync_at(client, engine, prices_server, V2_AT)

    # The same usage before and after the change's effective date.
    backfilled = ingest(client, tenant, usage("backfill", V2_AT - timedelta(minutes=1)))
    after = ingest(client, tenant, usage("after-v2", V2_AT + timedelta(minutes=1)))
    seed_era = ingest(client, tenant, usage("seed-era", V1_AT - timedelta(days=2)))
    assert (backfilled["cost_usd"], after["cost_usd"], seed_era["cost_usd"]) == (
        "0.50",
        "0.45",
        "0.50",
    )
    # The change did not rewrite what was stored before it.
    assert cost_of(client, tenant, "before-v2") == "0.50"
    provenance = client.get("/v1/usage/after-v2", headers=tenant.read).json()
    assert provenance["price_source"].startswith("genai-prices snapshot ")
    assert provenance["price_ref"] == "openai:gpt-3.5-turbo"
    at_v1 = client.get(
        "/v1/models/gpt-3.5-turbo/price",
        params={"at": (V2_AT - timedelta(hours=1)).isoformat()},
        headers=tenant.read,
    ).json()
    at_v2 = client.get("/v1/models/gpt-3.5-turbo/price", headers=tenant.read).json()
    assert (at_v1["effective_input_per_mtok"], at_v2["effective_input_per_mtok"]) == (
        "0.50",
        "0.45",
    )
    assert at_v2["catalogue"]["effective_from"] == V2_AT.date().isoformat()


def test_calls_either_side_of_a_new_version_on_its_day_price_by_their_own_version(
    client: TestClient, engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    sync_at(client, engine, prices_server, V1_AT)
    cheaper = catalogue_doc()
    set_price(cheaper, "openai", "gpt-3.5-turbo", "input_mtok", 0.45)
    prices_server.serve(cheaper)
    sync_at(client, engine, prices_server, V2_AT)
    pricer = Pricer(engine)
    tick = timedelta(microseconds=1)
    # Instants around the change, also in UTC offsets whose local date is the day before or
    # after it, and days away from it; each round after the first is answered by cached plans.
    east, west = timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))
    # (Equal instants in other offsets are equal datetimes: a list, not a dict, keeps them.)
    cases = [
        (V2_AT - tick, 500_000_000),
        (V2_AT, 450_000_000),
        ((V2_AT - tick).astimezone(east), 500_000_000),
        (V2_AT.astimezone(east), 450_000_000),
        ((V2_AT - tick).astimezone(west), 500_000_000),
        (V2_AT.astimezone(west), 450_000_000),
        (V2_AT - timedelta(days=2), 500_000_000),
        (V2_AT + timedelta(days=2), 450_000_000),
    ]
    for _ in range(3):
        for at, cost in random.sample(cases, len(cases)):
            quote = pricer.price(
                org_id=tenant.org.id,
                model_name="gpt-3.5-turbo",
                provider=None,
                tokens=TokenCounts(1_000_000, 0),
                at=at,
            )
            assert quote.cost_nanos == cost, at.isoformat()


def test_an_upstream_start_date_splits_prices_within_one_snapshot(
    client: TestClient, engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    change_day = (NOW - timedelta(days=3)).date()
    doc = catalogue_doc()
    for provider in doc:
        for model in provider["models"]:
            if model["id"] == "gpt-3.5-turbo":
                model["prices"] = [
                    {"prices": {"input_mtok": 0.5, "output_mtok": 1.5}},
                    {
                        "constraint": {"start_date": change_day.isoformat()},
                        "prices": {"input_mtok": 0.4, "output_mtok": 1.5},
                    },
                ]
    prices_server.serve(doc)
    sync_at(client, engine, prices_server, V1_AT)
    day_before = datetime.combine(change_day - timedelta(days=1), datetime.max.time(), UTC)
    day_of = datetime.combine(change_day, datetime.min.time(), UTC)
    assert ingest(client, tenant, usage("a", day_before))["cost_usd"] == "0.50"
    assert ingest(client, tenant, usage("b", day_of))["cost_usd"] == "0.40"
    listed = client.get("/v1/models", params={"q": "gpt-3.5-turbo"}, headers=tenant.read).json()
    entry = next(m for m in listed["models"] if m["model"] == "gpt-3.5-turbo")
    assert entry["input_per_mtok"] == "0.4" and entry["effective_from"] == change_day.isoformat()


def test_a_model_first_listed_later_prices_earlier_events(
    client: TestClient, engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    sync_at(client, engine, prices_server, V1_AT)
    newer = catalogue_doc()
    add_model(newer, "openai", "gpt-acme-test", 2.0, 4.0)
    prices_server.serve(newer)
    sync_at(client, engine, prices_server, V2_AT)
    early = ingest(client, tenant, usage("early", V1_AT + timedelta(days=1), "gpt-acme-test"))
    assert early["priced"] is True and early["cost_usd"] == "2.00"


def test_models_list_the_date_each_price_was_checked(
    client: TestClient, engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    before = client.get("/v1/models", headers=tenant.read).json()
    assert before["count"] >= 100 and before["source"].endswith("(bundled)")
    sync_at(client, engine, prices_server, V1_AT)
    prices_server.serve(catalogue_doc())
    sync_prices(engine, source=prices_server.url, triggered_by="test", now=V2_AT)  # unchanged
    listed = client.get("/v1/models", params={"provider": "openai"}, headers=tenant.read).json()
    assert listed["count"] >= 50
    assert {m["checked_at"] for m in listed["models"]} == {V2_AT.isoformat().replace("+00:00", "Z")}
    same = next(m for m in listed["models"] if m["model"] == "gpt-3.5-turbo")
    assert same["effective_from"] is None  # unchanged since the bundled seed: date unknown
    changed = next(m for m in listed["models"] if m["model"] == "gpt-4o")
    assert changed["effective_from"] == V1_AT.date().isoformat()  # web search prices dropped
    assert date.fromisoformat(listed["last_sync"][:10]) == V2_AT.date()


def test_repricing_applies_a_new_catalogue_from_its_instant_not_its_day(
    client: TestClient, engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    sync_at(client, engine, prices_server, V1_AT)
    noon = datetime.combine(V2_AT.date(), time(12), UTC)
    ingest(client, tenant, usage("morning", noon - timedelta(minutes=1)))
    ingest(client, tenant, usage("afternoon", noon + timedelta(minutes=1)))
    cheaper = catalogue_doc()
    set_price(cheaper, "openai", "gpt-3.5-turbo", "input_mtok", 0.45)
    prices_server.serve(cheaper)
    sync_at(client, engine, prices_server, noon)
    # Stored costs stay until someone re-prices; then each event gets the price of its instant.
    assert (cost_of(client, tenant, "morning"), cost_of(client, tenant, "afternoon")) == (
        "0.50",
        "0.50",
    )
    day = noon.date().isoformat()
    response = client.post(
        "/v1/pricing/reprice", json={"from": day, "to": day}, headers=tenant.admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["changed_events"] == 1
    assert (cost_of(client, tenant, "morning"), cost_of(client, tenant, "afternoon")) == (
        "0.50",
        "0.45",
    )
