"""`POST /v1/simulate` on real usage, against hand-computed prices (SQLite and PostgreSQL).

The February data: feature `summarize` on gpt-4o, 3 calls.
  plexo-health: 2 calls of 10,000 prompt tokens (4,000 cached) and 2,000 completion tokens
  helix-robotics: 1 call of 20,000 prompt tokens and 1,000 completion tokens
  totals: 40,000 prompt (8,000 cached, so 32,000 uncached), 5,000 completion.
gpt-4o ($2.50 in, $1.25 cached, $10 out per 1M):   0.08 + 0.01 + 0.05       = $0.14
gpt-4o-mini ($0.15, $0.075, $0.60 per 1M):          0.0048 + 0.0006 + 0.003  = $0.0084
Revenue: plexo $0.07 (it loses money, and lost money in January too), helix $0.10.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant, db_state

MONTH = {"from": "2026-02-01", "to": "2026-02-28"}
ATTRIBUTION = "LLM Stats (llm-stats.com), CC-BY-4.0"


def event(request_id: str, customer: str, prompt: int, completion: int, **extra: Any) -> Any:
    return {
        "request_id": request_id,
        "customer_id": customer,
        "model_name": "gpt-4o",
        "feature": "summarize",
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "timestamp": "2026-02-14T15:04:05Z",
        **extra,
    }


@pytest.fixture
def usage(client: TestClient, tenant: Tenant) -> None:
    events = [
        event("p1", "plexo-health", 10_000, 2_000, cached_tokens=4_000),
        event("p2", "plexo-health", 10_000, 2_000, cached_tokens=4_000),
        event("h1", "helix-robotics", 20_000, 1_000),
        # January: plexo lost money then too (a cent of cost, no revenue)
        event("j1", "plexo-health", 0, 1_000, feature="chat", timestamp="2026-01-20T10:00:00Z"),
    ]
    body = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).json()
    assert body["accepted"] == 4, body
    revenue = [
        {"revenue_id": "r1", "customer_id": "plexo-health", "amount": "0.07", "month": "2026-02"},
        {"revenue_id": "r2", "customer_id": "helix-robotics", "amount": "0.10", "month": "2026-02"},
    ]
    body = client.post("/v1/revenue", json={"revenue": revenue}, headers=tenant.ingest).json()
    assert body["accepted"] == 2, body


def simulate(client: TestClient, tenant: Tenant, **body: Any) -> Any:
    response = client.post("/v1/simulate", json={**MONTH, **body}, headers=tenant.read)
    assert response.status_code == 200, response.text
    return response.json()


def only_row(body: Any) -> Any:
    assert len(body["rows"]) == 1, body["rows"]
    return body["rows"][0]


def by_model(row: Any) -> dict[str, Any]:
    return {c["model"]: c for c in row["candidates"]}


@pytest.mark.usefixtures("usage")
def test_gpt_4o_repriced_on_gpt_4o_mini_is_exact(client: TestClient, tenant: Tenant) -> None:
    body = simulate(client, tenant, candidates=["gpt-4o-mini"], max_quality_drop_pct=50)
    assert body["attribution"] == ATTRIBUTION
    row = only_row(body)
    assert (row["feature"], row["model"], row["provider"]) == ("summarize", "gpt-4o", "openai")
    assert (row["events"], row["prompt_tokens"], row["cached_tokens"]) == (3, 40_000, 8_000)
    assert (row["completion_tokens"], row["max_prompt_tokens"]) == (5_000, 20_000)
    assert row["cost"] == row["current_cost_today"] == "0.14"
    assert row["simulated_cost"] == "0.0084"
    assert row["savings"] == "0.1316"
    assert row["savings_pct"] == 94.0
    # ± 10% tokens: $0.00756 to $0.00924
    assert (row["savings_low"], row["savings_high"]) == ("0.13076", "0.13244")
    best = row["best_candidate"]
    assert (best["model"], best["provider"], best["token_basis"]) == (
        "gpt-4o-mini",
        "openai",
        "assumed",
    )
    assert (best["quality"], row["quality"]) == (40.2, 72.4)
    assert best["quality_drop_pct"] == 44.48
    assert best["intelligence_per_dollar"] == pytest.approx(40.2 / 0.0084, abs=1e-3)
    assert best["eligible"] and best["excluded_because"] == []
    totals = body["totals"]
    assert (totals["cost"], totals["simulated_cost"], totals["savings"]) == (
        "0.14",
        "0.0084",
        "0.1316",
    )


@pytest.mark.usefixtures("usage")
def test_per_customer_margins_sum_to_the_org_totals(client: TestClient, tenant: Tenant) -> None:
    body = simulate(
        client,
        tenant,
        candidates=["gpt-4o-mini"],
        max_quality_drop_pct=50,
        migration_hours="10",
        hourly_rate="100",
    )
    pnl = client.get("/v1/pnl?month=2026-02&group_by=customer", headers=tenant.read).json()
    customers = {c["customer_id"]: c for c in body["customers"]}
    assert set(customers) == {"plexo-health", "helix-robotics"}
    plexo, helix = customers["plexo-health"], customers["helix-robotics"]
    # the new cost is shared by each customer's own mix at gpt-4o-mini's rates
    assert (plexo["cost_before"], plexo["cost_after"]) == ("0.08", "0.0048")
    assert (helix["cost_before"], helix["cost_after"]) == ("0.06", "0.0036")
    assert (plexo["margin_before"], plexo["margin_after"]) == ("-0.01", "0.0652")
    assert (plexo["action_before"], plexo["action_after"]) == ("reprice_or_throttle", "healthy")
    assert plexo["turns_positive"] and not helix["turns_positive"]
    assert plexo["negative_months"] == 2 and plexo["act_on"]  # negative in January too
    assert helix["negative_months"] == 0 and not helix["act_on"]

    def total(field: str) -> Decimal:
        return sum((Decimal(c[field]) for c in customers.values()), Decimal(0))

    totals = body["customer_totals"]
    assert total("margin_before") == Decimal(totals["margin_before"]) == Decimal("0.03")
    assert total("cost_before") == Decimal(pnl["totals"]["cost"]) == Decimal(body["totals"]["cost"])
    assert total("revenue") == Decimal(pnl["totals"]["revenue"]) == Decimal("0.17")
    assert total("margin_before") == Decimal(pnl["totals"]["margin"])
    assert total("cost_after") == Decimal(body["totals"]["simulated_cost"]) == Decimal("0.0084")
    assert total("margin_after") == Decimal(totals["margin_after"]) == Decimal("0.1616")
    assert totals["turn_positive"] == 1

    roi = body["roi"]
    assert (roi["swaps"], roi["migration_cost"]) == (1, "1000.00")
    assert (roi["savings"], roi["monthly_savings"]) == ("0.1316", "0.1316")  # one whole month
    assert roi["payback_months"] == 7598.78  # 1000 / 0.1316
    assert roi["customers_to_act_on"] == ["plexo-health"]
    assert plexo["monthly_savings"] == "0.0752"
    assert plexo["payback_months"] == 13297.87  # 1000 / 0.0752
    assert helix["payback_months"] is None  # not one to act on


@pytest.mark.usefixtures("usage")
def test_quality_constraint_excludes_a_cheaper_but_weaker_model(
    client: TestClient, tenant: Tenant
) -> None:
    body = simulate(client, tenant, candidates=["gpt-4o-mini", "gpt-5-mini"])
    row = only_row(body)
    assert body["constraints"]["max_quality_drop_pct"] == 5.0  # the default
    mini, five_mini = by_model(row)["gpt-4o-mini"], by_model(row)["gpt-5-mini"]
    assert Decimal(mini["simulated_cost"]) < Decimal(five_mini["simulated_cost"])
    assert not mini["eligible"]
    assert mini["excluded_because"] == [
        "quality 40.2 is 44.5% below the current 72.4 (max_quality_drop_pct 5)"
    ]
    assert row["best_candidate"]["model"] == "gpt-5-mini"
    # gpt-5-mini: 32,000 x $0.25 + 8,000 x $0.025 + 5,000 x $2 per 1M
    assert row["simulated_cost"] == "0.0182"

    with_floor = only_row(simulate(client, tenant, candidates=["gpt-4o-mini"], min_quality=41))
    assert with_floor["best_candidate"] is None
    assert by_model(with_floor)["gpt-4o-mini"]["excluded_because"] == [
        "quality 40.2 is below min_quality 41"
    ]
    assert with_floor["note"] == "no candidate meets the constraints"
    assert (with_floor["simulated_cost"], with_floor["savings"]) == ("0.14", "0.00")


@pytest.mark.usefixtures("usage")
def test_context_window_excludes_a_model_smaller_than_the_largest_prompt(
    client: TestClient, tenant: Tenant
) -> None:
    wide_open = {"candidates": ["gpt-3.5-turbo"], "max_quality_drop_pct": 100}
    row = only_row(simulate(client, tenant, **wide_open))
    turbo = by_model(row)["gpt-3.5-turbo"]
    assert turbo["context_window"] == 16_385
    assert turbo["excluded_because"] == [
        "context window 16,385 is smaller than the largest prompt 20,000"
    ]
    assert row["best_candidate"] is None
    # plexo's prompts alone (10,000 tokens) fit
    plexo = only_row(simulate(client, tenant, customer_id="plexo-health", **wide_open))
    assert plexo["max_prompt_tokens"] == 10_000
    assert plexo["best_candidate"]["model"] == "gpt-3.5-turbo"


@pytest.mark.usefixtures("usage")
def test_an_unscored_model_is_shown_but_never_recommended(
    client: TestClient, tenant: Tenant
) -> None:
    body = simulate(
        client,
        tenant,
        candidates=["mistral/ministral-8b", "gpt-4o-mini"],
        max_quality_drop_pct=100,
        min_quality=0,
    )
    row = only_row(body)
    unscored = by_model(row)["ministral-8b"]
    assert unscored["quality"] is None and unscored["intelligence_per_dollar"] is None
    assert unscored["excluded_because"] == ["no quality score"]
    # the cheapest by far ($0.10 per 1M either way), listed last
    assert unscored["simulated_cost"] == "0.0045"
    assert row["candidates"][-1]["model"] == "ministral-8b"
    assert row["best_candidate"]["model"] == "gpt-4o-mini"
    # the default candidate set holds scored models only
    default = only_row(simulate(client, tenant, max_quality_drop_pct=100, limit=500))
    assert all(c["quality"] is not None for c in default["candidates"])
    assert default["candidates_considered"] >= 80


@pytest.mark.usefixtures("usage")
def test_observed_tokens_per_call_replace_the_assumption(
    client: TestClient, tenant: Tenant
) -> None:
    seen = {
        **event("m1", "helix-robotics", 6_000, 3_000),
        "model_name": "gpt-4o-mini",
    }
    assert client.post("/v1/usage", json=seen, headers=tenant.ingest).status_code == 200
    body = simulate(client, tenant, candidates=["gpt-4o-mini"], max_quality_drop_pct=50)
    row = next(r for r in body["rows"] if r["model"] == "gpt-4o")
    mini = row["best_candidate"]
    assert mini["token_basis"] == "observed"
    # 3 calls x (6,000 in, 3,000 out): 18,000 x $0.15 + 9,000 x $0.60 per 1M
    assert mini["simulated_cost"] == mini["simulated_cost_low"] == "0.0081"
    assert mini["simulated_cost_high"] == "0.0081"
    assert (mini["input_token_ratio"], mini["output_token_ratio"]) == (0.45, 1.8)


@pytest.mark.usefixtures("usage")
def test_token_ratios_per_family_and_the_band(client: TestClient, tenant: Tenant) -> None:
    body = simulate(
        client,
        tenant,
        candidates=["claude-3-5-haiku-latest"],
        max_quality_drop_pct=100,
        token_ratios={"anthropic": {"input": 1.2, "output": 1.0}},
        token_band_pct=0,
    )
    haiku = only_row(body)["candidates"][0]
    assert (haiku["family"], haiku["input_token_ratio"], haiku["output_token_ratio"]) == (
        "anthropic",
        1.2,
        1.0,
    )
    # 48,000 prompt (9,600 cached): 38,400 x $0.80 + 9,600 x $0.08 + 5,000 x $4 per 1M
    assert haiku["simulated_cost"] == haiku["simulated_cost_low"] == "0.051488"
    assert body["constraints"]["token_ratios"] == {"anthropic": {"input": 1.2, "output": 1.0}}


@pytest.mark.usefixtures("usage")
def test_providers_and_capabilities_constrain_the_default_set(
    client: TestClient, tenant: Tenant
) -> None:
    body = simulate(
        client,
        tenant,
        allowed_providers=["anthropic"],
        required_capabilities=["vision", "function_calling"],
        max_quality_drop_pct=100,
        limit=500,
    )
    row = only_row(body)
    assert {c["provider"] for c in row["candidates"]} == {"anthropic"}
    for candidate in row["candidates"]:
        assert candidate["eligible"] == (candidate["excluded_because"] == [])
    assert row["best_candidate"]["provider"] == "anthropic"
    # one host per model, the maker's own API when providers are not restricted
    hosts = only_row(simulate(client, tenant, max_quality_drop_pct=100, limit=500))
    keys = [c["key"] for c in hosts["candidates"]]
    assert "anthropic/claude-3-5-haiku-latest" in keys
    assert not any(k.endswith("claude-3.5-haiku") for k in keys)  # not also via OpenRouter


def test_scope_and_an_empty_period(client: TestClient, tenant: Tenant) -> None:
    body = simulate(client, tenant)
    assert body["rows"] == [] and body["customers"] == []
    assert body["totals"]["cost"] == "0.00" and body["roi"]["payback_months"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
        ({"from": "2026-03-01", "to": "2026-02-01"}, "to"),
        ({"candidates": ["gpt-4o-mini", "no-such-model-xyz"]}, "candidates.1"),
        ({"candidates": []}, "candidates"),
        ({"max_quality_drop_pct": 150}, "max_quality_drop_pct"),
        ({"min_quality": -1}, "min_quality"),
        ({"weights": {"gpqa": 0}}, "weights"),
        ({"weights": {"gpqa": -1}}, "weights.gpqa"),
        ({"required_capabilities": ["telepathy"]}, "required_capabilities.0"),
        ({"token_ratios": {"anthropic": {"input": 0}}}, "token_ratios.anthropic.input"),
        ({"hourly_rate": "lots"}, "hourly_rate"),
        ({"limit": 0}, "limit"),
        ({"month": "2026-2"}, "month"),
        ({"bogus": 1}, "bogus"),
        ({"feature": "sum\u0000marize"}, "feature"),
        ({"allowed_providers": ["open\u0000ai"]}, "allowed_providers.0"),
    ],
)
@pytest.mark.usefixtures("usage")
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    client: TestClient, tenant: Tenant, engine: Engine, body: Any, field: str
) -> None:
    before = db_state(engine)
    response = client.post("/v1/simulate", json={**MONTH, **body}, headers=tenant.read)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [d["field"] for d in error["details"]], error
    assert db_state(engine) == before


def test_auth_and_malformed_bodies(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    before = db_state(engine)
    assert client.post("/v1/simulate", json=MONTH).status_code == 401
    assert client.post("/v1/simulate", json=MONTH, headers=tenant.ingest).status_code == 403
    response = client.post(
        "/v1/simulate",
        content=b"{not json",
        headers={**tenant.read, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    listed = client.post("/v1/simulate", json=["x"], headers=tenant.read)
    assert listed.status_code == 422
    assert db_state(engine) == before


def test_simulate_is_in_the_openapi_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/v1/simulate" in schema["paths"]
    assert "max_quality_drop_pct" in schema["components"]["schemas"]["SimulateIn"]["properties"]


@pytest.mark.usefixtures("usage")
def test_the_same_model_on_another_host_has_identical_tokens_and_no_range(
    client: TestClient, tenant: Tenant
) -> None:
    body = simulate(
        client, tenant, candidates=["openrouter/openai/gpt-4o"], max_quality_drop_pct=100
    )
    same = only_row(body)["candidates"][0]
    assert same["token_basis"] == "same_model"
    assert same["simulated_cost"] == same["simulated_cost_low"] == same["simulated_cost_high"]


@pytest.mark.usefixtures("usage")
def test_an_unpriced_model_has_an_unknown_cost_never_zero(
    client: TestClient, tenant: Tenant
) -> None:
    from rich.console import Console

    from margindash.simulator.cli import _print_simulation

    unknown = [
        event(f"u{i}", "plexo-health", 1_000, 100, model_name="acme-llama-70b") for i in range(2)
    ]
    body = client.post("/v1/usage", json={"events": unknown}, headers=tenant.ingest).json()
    assert body["accepted"] == 2 and body["results"][0]["priced"] is False
    result = simulate(client, tenant, candidates=["gpt-4o-mini"], max_quality_drop_pct=50)
    priced, unpriced = result["rows"]  # the one with a known cost ranks first
    assert (priced["model"], priced["cost"]) == ("gpt-4o", "0.14")
    assert (unpriced["model"], unpriced["events"], unpriced["unpriced_events"]) == (
        "acme-llama-70b",
        2,
        2,
    )
    for name in ("cost", "simulated_cost", "savings", "savings_low", "savings_high"):
        assert unpriced[name] is None, name
    assert unpriced["savings_pct"] is None and unpriced["best_candidate"] is None
    assert "unpriced" in unpriced["note"]
    # What a candidate would cost is known; what it saves against an unknown cost is not.
    (candidate,) = unpriced["candidates"]
    assert candidate["simulated_cost"] == "0.00042"  # 2,000 x $0.15/M + 200 x $0.60/M
    assert candidate["savings"] is None and candidate["savings_pct"] is None
    totals = result["totals"]
    assert (totals["events"], totals["unpriced_events"]) == (5, 2)
    assert (totals["cost"], totals["simulated_cost"], totals["savings"]) == (
        "0.14",
        "0.0084",
        "0.1316",
    )
    # The command line shows it as unpriced, not as $0.
    console = Console(record=True, width=240, color_system=None)
    _print_simulation(console, result)
    text = console.export_text()
    line = next(row for row in text.splitlines() if "acme-llama-70b" in row)
    assert "unpriced" in line and "$0.00" not in line
    assert "2 events of unpriced models are not in these costs" in text
