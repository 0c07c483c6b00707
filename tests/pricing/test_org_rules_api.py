"""An org's aliases, custom prices and discounts over the API, with effective dates; every bad
input is a 4xx naming the field, with nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant, db_state, make_tenant

NOW = datetime.now(UTC).replace(microsecond=0)


def usage(request_id: str, model: str, at: datetime, provider: str | None = None) -> dict[str, Any]:
    event = {
        "request_id": request_id,
        "customer_id": "acct_1",
        "model_name": model,
        "prompt_tokens": 1_000_000,
        "completion_tokens": 0,
        "timestamp": at.isoformat(),
    }
    if provider:
        event["provider"] = provider
    return event


def ingest(client: TestClient, tenant: Tenant, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = client.post("/v1/usage", json=event, headers=tenant.ingest).json()[
        "results"
    ][0]
    return result


def test_aliases_are_listed_dated_and_deleted(client: TestClient, tenant: Tenant) -> None:
    switch = (NOW - timedelta(days=3)).date()
    first = client.post(
        "/v1/pricing/aliases",
        json={"alias": "Prod-Chat", "model": "gpt-4o", "provider": "openai"},
        headers=tenant.admin,
    )
    assert first.status_code == 201, first.text
    second = client.post(
        "/v1/pricing/aliases",
        json={"alias": "prod-chat", "model": "gpt-4o-mini", "effective_from": switch.isoformat()},
        headers=tenant.admin,
    )
    assert second.status_code == 201, second.text
    listed = client.get("/v1/pricing/aliases", headers=tenant.read).json()
    assert [(a["alias"], a["model"], a["effective_from"]) for a in listed["aliases"]] == [
        ("prod-chat", "gpt-4o", "1970-01-01"),
        ("prod-chat", "gpt-4o-mini", switch.isoformat()),
    ]
    before = ingest(client, tenant, usage("a", "prod-chat", NOW - timedelta(days=5)))
    after = ingest(client, tenant, usage("b", "prod-chat", NOW - timedelta(days=1)))
    assert (before["model"], before["cost_usd"]) == ("gpt-4o", "2.50")
    assert (after["model"], after["cost_usd"]) == ("gpt-4o-mini", "0.15")

    removed = client.delete(f"/v1/pricing/aliases/{second.json()['id']}", headers=tenant.admin)
    assert removed.status_code == 200 and removed.json() == {
        "id": second.json()["id"],
        "deleted": True,
    }
    assert ingest(client, tenant, usage("c", "prod-chat", NOW))["model"] == "gpt-4o"
    assert client.get("/v1/usage/b", headers=tenant.read).json()["cost_usd"] == "0.15"


def test_overrides_end_and_are_deleted_without_touching_priced_events(
    client: TestClient, tenant: Tenant
) -> None:
    last_day = (NOW - timedelta(days=2)).date()
    discount = client.post(
        "/v1/pricing/overrides",
        json={
            "provider": "openai",
            "discount_pct": "20",
            "effective_from": "2020-01-01",
            "effective_to": last_day.isoformat(),
        },
        headers=tenant.admin,
    )
    assert discount.status_code == 201, discount.text
    custom = client.post(
        "/v1/pricing/overrides",
        json={"model": "acme-llama", "input_per_mtok": "0.3", "output_per_mtok": "0.6"},
        headers=tenant.admin,
    )
    assert custom.status_code == 201
    during = ingest(client, tenant, usage("d1", "gpt-4o-mini", NOW - timedelta(days=3)))
    after = ingest(client, tenant, usage("d2", "gpt-4o-mini", NOW - timedelta(days=1)))
    own = ingest(client, tenant, usage("d3", "acme-llama", NOW))
    assert (during["cost_usd"], after["cost_usd"], own["cost_usd"]) == ("0.12", "0.15", "0.30")

    listed = client.get("/v1/pricing/overrides", headers=tenant.read).json()["overrides"]
    assert [(o["kind"], o["discount_pct"], o["effective_to"]) for o in listed] == [
        ("discount", "20", last_day.isoformat()),
        ("custom", None, None),
    ]
    assert listed[1]["input_per_mtok"] == "0.3" and listed[1]["output_per_mtok"] == "0.6"

    custom_id = custom.json()["id"]
    assert client.delete(f"/v1/pricing/overrides/{custom_id}", headers=tenant.admin).json() == {
        "id": custom_id,
        "deleted": True,
    }
    again = client.delete(f"/v1/pricing/overrides/{custom_id}", headers=tenant.admin)
    assert again.status_code == 404
    assert ingest(client, tenant, usage("d4", "acme-llama", NOW))["priced"] is False
    assert client.get("/v1/usage/d3", headers=tenant.read).json()["cost_usd"] == "0.30"
    remaining = client.get("/v1/pricing/overrides", headers=tenant.read).json()
    assert remaining["count"] == 1
    everything = client.get(
        "/v1/pricing/overrides", params={"include_deleted": "true"}, headers=tenant.read
    ).json()
    assert everything["count"] == 2 and everything["overrides"][1]["deleted_at"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("aliases", {"alias": "", "model": "gpt-4o"}, "alias"),
        ("aliases", {"alias": "x", "model": "gpt-4oo-typo"}, "model"),
        ("aliases", {"alias": "gpt-4o", "model": "gpt-4o"}, "model"),
        ("aliases", {"alias": "x", "model": "gpt-4o", "effective_from": "soon"}, "effective_from"),
        ("aliases", {"alias": "x", "model": "gpt-4o", "colour": "red"}, "colour"),
        (
            "overrides",
            {"model": "m", "input_per_mtok": "-1", "output_per_mtok": "1"},
            "input_per_mtok",
        ),
        (
            "overrides",
            {"model": "m", "input_per_mtok": "abc", "output_per_mtok": "1"},
            "input_per_mtok",
        ),
        ("overrides", {"model": "m", "input_per_mtok": "1"}, "output_per_mtok"),
        ("overrides", {"input_per_mtok": "1", "output_per_mtok": "1"}, "model"),
        ("overrides", {"provider": "openai", "discount_pct": "0"}, "discount_pct"),
        ("overrides", {"provider": "openai", "discount_pct": "100.5"}, "discount_pct"),
        ("overrides", {"discount_pct": "10"}, "provider"),
        # More decimals than stored, beyond Decimal's 28 digits: not rounded to "0.1".
        (
            "overrides",
            {"model": "m", "input_per_mtok": "0.1" + "0" * 29 + "1", "output_per_mtok": "1"},
            "input_per_mtok",
        ),
        (
            "overrides",
            {"provider": "openai", "discount_pct": "10." + "0" * 29 + "1"},
            "discount_pct",
        ),
        (
            "overrides",
            {"model": "m", "input_per_mtok": "1", "output_per_mtok": "1", "discount_pct": "10"},
            "discount_pct",
        ),
        (
            "overrides",
            {
                "provider": "openai",
                "discount_pct": "10",
                "effective_from": "2026-02-01",
                "effective_to": "2026-01-31",
            },
            "effective_to",
        ),
    ],
)
def test_bad_rules_are_rejected_naming_the_field_and_nothing_is_written(
    client: TestClient, tenant: Tenant, engine: Engine, path: str, body: dict[str, Any], field: str
) -> None:
    before = db_state(engine)
    response = client.post(f"/v1/pricing/{path}", json=body, headers=tenant.admin)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert field in [d["field"] for d in error["details"]], error
    assert db_state(engine) == before


def test_malformed_json_and_wrong_keys_write_nothing(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    malformed = client.post(
        "/v1/pricing/aliases",
        content=b'{"alias": "x",',
        headers={**tenant.admin, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    forbidden = client.post(
        "/v1/pricing/overrides",
        json={"model": "m", "input_per_mtok": "1", "output_per_mtok": "1"},
        headers=tenant.read,
    )
    assert forbidden.status_code == 403
    assert db_state(engine) == before


def test_one_org_cannot_see_or_delete_another_orgs_rules(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    other = make_tenant(engine, "other")
    alias = client.post(
        "/v1/pricing/aliases", json={"alias": "x", "model": "gpt-4o"}, headers=tenant.admin
    ).json()
    assert client.get("/v1/pricing/aliases", headers=other.read).json()["count"] == 0
    stolen = client.delete(f"/v1/pricing/aliases/{alias['id']}", headers=other.admin)
    assert stolen.status_code == 404
    assert client.get("/v1/pricing/aliases", headers=tenant.read).json()["count"] == 1


def test_a_tiered_model_shows_its_base_tier_prices(client: TestClient, tenant: Tenant) -> None:
    """Claude Sonnet 4.5 costs $3 / $15 per 1M tokens up to 200k prompt tokens, $6 / $22.50
    above: the price endpoint shows one tier, not the input of one and the output of the
    other."""
    body = client.get("/v1/models/claude-sonnet-4-5/price", headers=tenant.read).json()
    shown = (body["effective_input_per_mtok"], body["effective_output_per_mtok"])
    assert shown == ("3.00", "15.00")
    assert body["catalogue"]["tiered"] is True
    # A call above the threshold is still priced at the higher tier.
    event = {
        "request_id": "long-prompt",
        "customer_id": "c",
        "model_name": "claude-sonnet-4-5",
        "prompt_tokens": 1_000_000,
        "completion_tokens": 0,
    }
    result = client.post("/v1/usage", json=event, headers=tenant.ingest).json()["results"][0]
    assert result["cost_usd"] == "6.00"


def test_a_discount_names_a_model_as_events_do_and_a_typo_is_refused(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    """A discount on a dated snapshot name applies to the events that send that name; one on
    a name no event could resolve to would apply to nothing, so it is refused."""
    snapshot = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "discount_pct": "50"}
    added = client.post("/v1/pricing/overrides", json=snapshot, headers=tenant.admin)
    assert added.status_code == 201, added.text
    event = {
        "request_id": "d1",
        "customer_id": "c",
        "model_name": "gpt-4o-mini-2024-07-18",
        "prompt_tokens": 1_000_000,
        "completion_tokens": 0,
    }
    priced = client.post("/v1/usage/dry-run", json=event, headers=tenant.ingest).json()
    assert priced["results"][0]["cost_usd"] == "0.075"  # $0.15 per 1M input tokens, halved
    before = db_state(engine)
    typo = {"model": "gpt-4oo", "discount_pct": "50"}
    refused = client.post("/v1/pricing/overrides", json=typo, headers=tenant.admin)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "model"
    assert db_state(engine) == before


def test_a_new_override_is_answered_as_stored_in_the_shape_get_lists(
    client: TestClient, tenant: Tenant
) -> None:
    custom = {
        "model": "acme-llama-70b",
        "input_per_mtok": "0.20",
        "output_per_mtok": "0.600",
        "cached_input_per_mtok": None,
        "effective_from": "2026-01-01",
    }
    discount = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "discount_pct": "10.50"}
    answers = []
    for body in (custom, discount):
        response = client.post("/v1/pricing/overrides", json=body, headers=tenant.admin)
        assert response.status_code == 201, response.text
        answers.append(response.json())
    listed = client.get("/v1/pricing/overrides", headers=tenant.read).json()["overrides"]
    for answer, stored in zip(answers, listed, strict=True):
        assert answer == {**stored, "repriced_events": 0}
    assert (answers[0]["input_per_mtok"], answers[0]["output_per_mtok"]) == ("0.2", "0.6")
    assert answers[0]["kind"] == "custom" and answers[0]["created_at"].endswith("Z")
    # The discount's model as events resolve it, not the snapshot name sent.
    assert (answers[1]["kind"], answers[1]["model"], answers[1]["discount_pct"]) == (
        "discount",
        "gpt-4o-mini",
        "10.5",
    )
