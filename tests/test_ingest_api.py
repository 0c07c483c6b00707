"""`POST /v1/usage`: pricing, idempotency, batches, and every kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant, db_state

BRIEF_EVENT = {
    "customer_id": "acct_123",
    "model_name": "gpt-4o-mini",
    "prompt_tokens": 120,
    "completion_tokens": 80,
    "request_id": "req_abc123",
    "timestamp": "2026-02-14T15:04:05Z",
}


def recent(**overrides: Any) -> dict[str, Any]:
    """The brief's event, timestamped an hour ago so it is always within the accepted window."""
    ts = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return {**BRIEF_EVENT, "timestamp": ts, **overrides}


def test_brief_event_is_priced_exactly(client: TestClient, tenant: Tenant) -> None:
    response = client.post("/v1/usage", json=recent(), headers=tenant.ingest)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0 and body["rejected"] == 0
    result = body["results"][0]
    assert result == {
        "request_id": "req_abc123",
        "status": "accepted",
        "cost_usd": "0.000066",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "priced": True,
        "estimated": False,
        "warnings": [],
        "error": None,
    }
    stored = client.get("/v1/usage/req_abc123", headers=tenant.read).json()
    assert stored["cost_usd"] == "0.000066"
    assert stored["price_ref"] == "openai:gpt-4o-mini"
    sent = datetime.fromisoformat(recent()["timestamp"]).replace(microsecond=0)
    read_back = datetime.fromisoformat(stored["timestamp"].replace("Z", "+00:00"))
    assert abs(read_back - sent) < timedelta(seconds=5) and read_back.tzinfo is not None
    assert stored["price_source"].startswith("genai-prices ")


def test_same_request_id_is_counted_once(client: TestClient, tenant: Tenant) -> None:
    first = client.post("/v1/usage", json=recent(), headers=tenant.ingest).json()
    retry = recent(model_name="gpt-4o", prompt_tokens=999)
    again = client.post("/v1/usage", json=retry, headers=tenant.ingest).json()
    assert first["accepted"] == 1
    assert again["duplicates"] == 1
    # The duplicate reports the stored event, not a price for the copy that was not stored.
    duplicate = again["results"][0]
    assert duplicate == {**first["results"][0], "status": "duplicate"}
    pnl = client.get("/v1/pnl", headers=tenant.read).json()
    assert pnl["totals"]["events"] == 1
    assert pnl["totals"]["prompt_tokens"] == 120


def test_batch_keeps_valid_events_and_reports_each_invalid_one(
    client: TestClient, tenant: Tenant
) -> None:
    events = [
        recent(request_id="a"),
        recent(request_id="b", prompt_tokens=-5),
        recent(request_id="a", model_name="gpt-4o"),  # duplicate inside the batch
        recent(request_id="c", model_name="gpt-4o"),
        "not an object",
    ]
    body = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).json()
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "duplicate",
        "accepted",
        "rejected",
    ]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 2)
    first, duplicate = body["results"][0], body["results"][2]
    assert (duplicate["model"], duplicate["cost_usd"]) == (first["model"], first["cost_usd"])
    assert body["results"][1]["error"]["details"][0]["field"] == "prompt_tokens"
    assert client.get("/v1/pnl", headers=tenant.read).json()["totals"]["events"] == 2


def test_unknown_model_is_unpriced_never_zero_then_repriced_by_alias(
    client: TestClient, tenant: Tenant
) -> None:
    body = client.post(
        "/v1/usage", json=recent(model_name="prod-gpt4o", provider="azure"), headers=tenant.ingest
    ).json()
    result = body["results"][0]
    assert result["status"] == "accepted"
    assert result["priced"] is False and result["cost_usd"] is None
    assert "unknown model" in result["warnings"][0]
    totals = client.get("/v1/pnl", headers=tenant.read).json()["totals"]
    assert totals["unpriced_events"] == 1 and totals["cost"] == "0.00"

    alias = {"alias": "prod-gpt4o", "model": "gpt-4o", "provider": "azure"}
    created = client.post("/v1/pricing/aliases", json=alias, headers=tenant.admin)
    assert created.status_code == 201 and created.json()["repriced_events"] == 1
    stored = client.get("/v1/usage/req_abc123", headers=tenant.read).json()
    # gpt-4o on Azure: 120 x $2.50/M + 80 x $10/M
    assert stored["cost_usd"] == "0.0011" and stored["model"] == "gpt-4o"
    pnl = client.get("/v1/pnl?group_by=model", headers=tenant.read).json()
    assert pnl["totals"]["unpriced_events"] == 0
    assert [(r["key"], r["events"], r["cost"]) for r in pnl["rows"]] == [("gpt-4o", 1, "0.00")]


def test_custom_price_prices_a_self_hosted_model(client: TestClient, tenant: Tenant) -> None:
    client.post("/v1/usage", json=recent(model_name="acme-llama-70b"), headers=tenant.ingest)
    override = {
        "model": "acme-llama-70b",
        "input_per_mtok": "0.20",
        "output_per_mtok": "0.60",
        "effective_from": "2020-01-01",
    }
    created = client.post("/v1/pricing/overrides", json=override, headers=tenant.admin)
    assert created.status_code == 201, created.text
    assert created.json()["repriced_events"] == 1
    stored = client.get("/v1/usage/req_abc123", headers=tenant.read).json()
    assert stored["cost_usd"] == "0.000072"  # 120 x 0.20/M + 80 x 0.60/M
    assert stored["price_source"] == "override"


def test_discount_applies_to_new_events(client: TestClient, tenant: Tenant) -> None:
    discount = {"provider": "openai", "discount_pct": "10", "effective_from": "2020-01-01"}
    assert (
        client.post("/v1/pricing/overrides", json=discount, headers=tenant.admin).status_code == 201
    )
    body = client.post("/v1/usage", json=recent(), headers=tenant.ingest).json()
    assert body["results"][0]["cost_usd"] == "0.0000594"


def test_dry_run_prices_without_storing(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    before = db_state(engine)
    body = client.post("/v1/usage/dry-run", json=recent(), headers=tenant.ingest).json()
    assert body["results"][0]["cost_usd"] == "0.000066"
    assert db_state(engine) == before
    # Duplicates answer as the real endpoint would: a stored id, or one repeated in the request.
    client.post("/v1/usage", json=recent(request_id="kept"), headers=tenant.ingest)
    batch = [recent(request_id="kept", model_name="gpt-4o"), recent(request_id="x")]
    batch.append(recent(request_id="x"))
    body = client.post("/v1/usage/dry-run", json={"events": batch}, headers=tenant.ingest).json()
    assert [r["status"] for r in body["results"]] == ["duplicate", "accepted", "duplicate"]
    assert body["results"][0]["model"] == "gpt-4o-mini"  # the stored event's
    assert (body["accepted"], body["duplicates"]) == (1, 2)


def test_lenient_mode_estimates_tokens_and_attributes_missing_customer(
    database_url: str, tmp_path: Any
) -> None:
    from margindash.app import create_app
    from margindash.config import Settings
    from margindash.db.engine import make_engine
    from tests.conftest import make_tenant

    settings = Settings(database_url=database_url, strict_token_counts=False)
    engine = make_engine(database_url)
    tenant = make_tenant(engine, "lenient")
    with TestClient(create_app(settings)) as client:
        event = recent(prompt_chars=400, completion_chars=40)
        for key in ("customer_id", "prompt_tokens", "completion_tokens"):
            event.pop(key)
        body = client.post("/v1/usage", json=event, headers=tenant.ingest).json()
        result = body["results"][0]
        assert result["status"] == "accepted" and result["estimated"] is True
        stored = client.get("/v1/usage/req_abc123", headers=tenant.read).json()
        # 400 chars / 4 x 1.1 = 110 tokens; 40 / 4 x 1.1 = 11
        assert (stored["prompt_tokens"], stored["completion_tokens"]) == (110, 11)
        assert stored["customer_id"] == "unattributed"
    engine.dispose()


BAD_EVENTS = [
    ({"prompt_tokens": "120"}, "prompt_tokens"),
    ({"prompt_tokens": -1}, "prompt_tokens"),
    ({"completion_tokens": 10_000_001}, "completion_tokens"),
    ({"prompt_tokens": 1.5}, "prompt_tokens"),
    ({"request_id": ""}, "request_id"),
    ({"request_id": "x" * 256}, "request_id"),
    ({"customer_id": ""}, "customer_id"),
    ({"model_name": None}, "model_name"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}, "timestamp"),
    ({"timestamp": "2020-01-01T00:00:00Z"}, "timestamp"),
    ({"cached_tokens": 500}, "cached_tokens"),
    ({"reasoning_tokens": 81}, "reasoning_tokens"),
    ({"metadata": {"deep": {"nested": "x"}}}, "metadata.deep"),
    ({"metadata": {"k": "v" * 2100}}, "metadata.k"),
    ({"customer_id": None}, "customer_id"),
    ({"request_id": None}, "request_id"),
    ({"prompt_tokens": None}, "prompt_tokens"),  # required in strict mode, null or not
]


@pytest.mark.parametrize(("change", "field"), BAD_EVENTS)
def test_bad_event_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, tenant: Tenant, engine: Engine, change: dict[str, Any], field: str
) -> None:
    before = db_state(engine)
    event = recent(**change)
    response = client.post("/v1/usage", json=event, headers=tenant.ingest)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["rejected"] == 1
    assert field in [d["field"] for d in body["error"]["details"]]
    assert db_state(engine) == before


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"request_id": ', {"Content-Type": "application/json"}, 400, "malformed_json"),
        (
            b"request_id=a",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (b"[]", {"Content-Type": "application/json"}, 422, "invalid_request"),
        (b'"just a string"', {"Content-Type": "application/json"}, 422, "invalid_request"),
        (b'{"events": {}}', {"Content-Type": "application/json"}, 422, "invalid_request"),
    ],
)
def test_malformed_bodies(
    client: TestClient,
    tenant: Tenant,
    engine: Engine,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = db_state(engine)
    response = client.post("/v1/usage", content=body, headers={**tenant.ingest, **headers})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert db_state(engine) == before


def test_too_many_events_and_too_large_bodies_are_413(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    events = [recent(request_id=f"r{i}") for i in range(1001)]
    assert (
        client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).status_code == 413
    )
    huge = b'{"events": [' + b'"' + b"x" * (6 * 1024 * 1024) + b'"]}'
    response = client.post(
        "/v1/usage", content=huge, headers={**tenant.ingest, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert db_state(engine) == before


def test_auth_and_scopes(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    before = db_state(engine)
    assert client.post("/v1/usage", json=recent()).status_code == 401
    bad = {"Authorization": "Bearer md_ingest_not-a-real-key"}
    assert client.post("/v1/usage", json=recent(), headers=bad).status_code == 401
    forbidden = client.post("/v1/usage", json=recent(), headers=tenant.read)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/pnl", headers=tenant.ingest).status_code == 403
    assert (
        client.post(
            "/v1/pricing/aliases", json={"alias": "a", "model": "b"}, headers=tenant.read
        ).status_code
        == 403
    )
    assert db_state(engine) == before


def test_orgs_never_see_each_other(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    from tests.conftest import make_tenant

    other = make_tenant(engine, "globex")
    client.post("/v1/usage", json=recent(), headers=tenant.ingest)
    assert client.get("/v1/usage/req_abc123", headers=other.read).status_code == 404
    assert client.get("/v1/pnl", headers=other.read).json()["totals"]["events"] == 0
    # The same request_id in another org is a different event.
    assert client.post("/v1/usage", json=recent(), headers=other.ingest).json()["accepted"] == 1


def test_request_ids_are_taken_exactly_as_sent(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    # An idempotency key with whitespace around it is another key: trimming it answered
    # `duplicate` for an event that was never stored.
    ids = ["b1", "b1 ", " b1", "b1\t"]
    events = [recent(request_id=request_id) for request_id in ids]
    body = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).json()
    assert [(r["request_id"], r["status"]) for r in body["results"]] == [
        (request_id, "accepted") for request_id in ids
    ]
    stored = client.get("/v1/usage/b1%20", headers=tenant.read).json()
    assert stored["request_id"] == "b1 "
    assert client.get("/v1/pnl", headers=tenant.read).json()["totals"]["events"] == 4
    before = db_state(engine)
    for blank in ("", " ", "\t\n"):
        response = client.post("/v1/usage", json=recent(request_id=blank), headers=tenant.ingest)
        assert response.status_code == 422, blank
        assert [d["field"] for d in response.json()["error"]["details"]] == ["request_id"]
    assert db_state(engine) == before


OPTIONAL_FIELDS = (
    "provider",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "timestamp",
    "feature",
    "revenue_amount_cents",
    "prompt_chars",
    "completion_chars",
    "metadata",
)


def test_null_optional_fields_mean_the_default(client: TestClient, tenant: Tenant) -> None:
    # JSON encoders write `null` for unset values: it means what leaving the field out means.
    sent = recent(request_id="with-nulls", **dict.fromkeys(OPTIONAL_FIELDS))
    omitted = {k: v for k, v in recent(request_id="omitted").items() if k not in OPTIONAL_FIELDS}
    for event in (sent, omitted):
        response = client.post("/v1/usage", json=event, headers=tenant.ingest)
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["cost_usd"] == "0.000066"
    with_nulls = client.get("/v1/usage/with-nulls", headers=tenant.read).json()
    without = client.get("/v1/usage/omitted", headers=tenant.read).json()
    for stored in (with_nulls, without):
        assert stored["feature"] == "default"
        assert (stored["cached_tokens"], stored["cache_write_tokens"]) == (0, 0)
        assert stored["reasoning_tokens"] == 0 and stored["metadata"] == {}
        assert stored["revenue_amount_cents"] is None
    assert with_nulls["timestamp"][:13] == with_nulls["received_at"][:13]  # time of receipt
