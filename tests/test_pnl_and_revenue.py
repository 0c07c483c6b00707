"""Revenue and P&L: the brief's decision table and sample dashboard reproduce to the cent."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Tenant, db_state

MONTH = "2026-02"


def gpt4o_output_events(customer: str, cost_cents: int, prefix: str) -> list[dict[str, Any]]:
    """Events whose cost is exactly `cost_cents`: gpt-4o output is $10 per 1M tokens."""
    tokens = cost_cents * 1000  # 1 cent = 1,000 output tokens
    events = []
    for i in range(0, tokens, 10_000_000):
        events.append(
            {
                "request_id": f"{prefix}-{i}",
                "customer_id": customer,
                "model_name": "gpt-4o",
                "prompt_tokens": 0,
                "completion_tokens": min(10_000_000, tokens - i),
                "feature": "summarize",
                "timestamp": "2026-02-14T15:04:05Z",
            }
        )
    return events


def post_all(client: TestClient, tenant: Tenant, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        body = client.post(
            "/v1/usage", json={"events": events[start : start + 1000]}, headers=tenant.ingest
        ).json()
        assert body["rejected"] == 0, body


def revenue(client: TestClient, tenant: Tenant, entries: list[dict[str, Any]]) -> Any:
    return client.post("/v1/revenue", json={"revenue": entries}, headers=tenant.ingest).json()


def test_brief_decision_table_and_dashboard_numbers(
    client: TestClient, tenant: Tenant, settings: Any
) -> None:
    # Plexo lost money in January too: "negative 2 months in a row".
    jan = [
        {**e, "timestamp": "2026-01-20T10:00:00Z"}
        for e in gpt4o_output_events("plexo-health", 10_000, "plexo-jan")
    ]
    post_all(client, tenant, jan)
    post_all(client, tenant, gpt4o_output_events("plexo-health", 27_720, "plexo"))
    post_all(client, tenant, gpt4o_output_events("helix-robotics", 12_731, "helix"))
    post_all(client, tenant, gpt4o_output_events("others", 834_000 - 27_720 - 12_731, "o"))
    body = revenue(
        client,
        tenant,
        [
            {
                "revenue_id": "inv-plexo-jan",
                "customer_id": "plexo-health",
                "amount": "50.00",
                "month": "2026-01",
            },
            {
                "revenue_id": "inv-plexo",
                "customer_id": "plexo-health",
                "amount": "233.25",
                "month": MONTH,
            },
            {
                "revenue_id": "inv-helix",
                "customer_id": "helix-robotics",
                "amount_cents": 13_429,
                "month": MONTH,
            },
            {
                "revenue_id": "inv-others",
                "customer_id": "others",
                "amount": "12112.46",
                "period_start": "2026-02-01",
                "period_end": "2026-02-28",
            },
        ],
    )
    assert body["accepted"] == 4, body

    pnl = client.get(f"/v1/pnl?month={MONTH}&group_by=customer", headers=tenant.read).json()
    assert (pnl["from"], pnl["to"]) == ("2026-02-01", "2026-02-28")
    totals = pnl["totals"]
    assert (totals["revenue"], totals["cost"], totals["margin"], totals["margin_pct"]) == (
        "12480.00",
        "8340.00",
        "4140.00",
        33.17,
    )
    rows = {row["key"]: row for row in pnl["rows"]}
    plexo, helix = rows["plexo-health"], rows["helix-robotics"]
    assert (plexo["revenue"], plexo["cost"], plexo["margin"], plexo["margin_pct"]) == (
        "233.25",
        "277.20",
        "-43.95",
        -18.84,
    )
    assert plexo["action"] == "reprice_or_throttle" and plexo["negative_months"] == 2
    assert (helix["revenue"], helix["cost"], helix["margin_pct"], helix["action"]) == (
        "134.29",
        "127.31",
        5.2,
        "monitor",
    )
    assert rows["others"]["action"] == "healthy"
    assert pnl["rows"][0]["key"] == "plexo-health"  # worst margin first

    customer = client.get(f"/v1/customers/plexo-health/pnl?month={MONTH}", headers=tenant.read)
    assert customer.status_code == 200
    detail = customer.json()
    assert detail["totals"]["margin_pct"] == -18.84
    assert [f["key"] for f in detail["features"]] == ["summarize"]
    assert [m["key"] for m in detail["models"]] == ["gpt-4o"]
    assert client.get("/v1/customers/nobody/pnl", headers=tenant.read).status_code == 404


def test_partial_ranges_split_revenue_by_day_exactly(client: TestClient, tenant: Tenant) -> None:
    revenue(
        client,
        tenant,
        [{"revenue_id": "r1", "customer_id": "c", "amount": "100.00", "month": "2026-03"}],
    )
    halves = [
        client.get(f"/v1/pnl?from={a}&to={b}", headers=tenant.read).json()["totals"]["revenue"]
        for a, b in (("2026-03-01", "2026-03-15"), ("2026-03-16", "2026-03-31"))
    ]
    # 31 days: $100 = 10,000,000,000 nanos → 322,580,646 x 4 days + 322,580,645 x 27 days.
    assert halves == ["48.39", "51.61"]
    days = client.get(
        "/v1/pnl?from=2026-03-01&to=2026-03-31&group_by=day", headers=tenant.read
    ).json()
    assert len(days["rows"]) == 31 and days["totals"]["revenue"] == "100.00"
    months = client.get(
        "/v1/pnl?from=2026-02-15&to=2026-04-10&group_by=month", headers=tenant.read
    ).json()
    assert [(r["key"], r["revenue"]) for r in months["rows"]] == [("2026-03", "100.00")]


def test_a_range_inside_one_month_reports_that_month_in_full(
    client: TestClient, tenant: Tenant
) -> None:
    """By month, a range with no whole month is read from daily rows: every day counts."""
    revenue(
        client,
        tenant,
        [{"revenue_id": "r1", "customer_id": "c", "amount": "31.00", "month": "2026-03"}],
    )
    by_day = {"group_by": "day", "from": "2026-03-03", "to": "2026-03-10"}
    by_month = {**by_day, "group_by": "month"}
    days = client.get("/v1/pnl", params=by_day, headers=tenant.read).json()
    months = client.get("/v1/pnl", params=by_month, headers=tenant.read).json()
    assert len(days["rows"]) == 8 and days["totals"]["revenue"] == "8.00"
    assert [(r["key"], r["revenue"]) for r in months["rows"]] == [("2026-03", "8.00")]
    assert months["totals"] == days["totals"]


def test_revenue_is_idempotent_refunds_are_negative(client: TestClient, tenant: Tenant) -> None:
    entry = {"revenue_id": "inv-1", "customer_id": "c", "amount": "40.00", "month": "2026-03"}
    assert revenue(client, tenant, [entry])["accepted"] == 1
    again = revenue(client, tenant, [{**entry, "amount": "99.00"}])
    assert again["duplicates"] == 1
    assert again["results"][0]["amount_usd"] == "40.00"  # what is booked, not what was resent
    refund = {"revenue_id": "re-1", "customer_id": "c", "amount": "-15.50", "month": "2026-03"}
    assert revenue(client, tenant, [refund])["accepted"] == 1
    totals = client.get("/v1/pnl?month=2026-03", headers=tenant.read).json()["totals"]
    assert totals["revenue"] == "24.50"


def test_foreign_currency_needs_an_fx_rate(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    entry = {
        "revenue_id": "eu-1",
        "customer_id": "c",
        "amount": "100.00",
        "currency": "EUR",
        "month": "2026-03",
    }
    rejected = client.post("/v1/revenue", json=entry, headers=tenant.ingest)
    assert rejected.status_code == 422
    assert rejected.json()["error"]["details"][0]["field"] == "currency"
    # USD is the reporting currency: a rate for it would be stored and never used.
    own = client.post("/v1/fx-rates", json={"currency": "usd", "rate": "0.9"}, headers=tenant.admin)
    assert own.status_code == 422 and own.json()["error"]["details"][0]["field"] == "currency"
    assert db_state(engine) == before

    rate = client.post(
        "/v1/fx-rates", json={"currency": "eur", "rate": "1.08"}, headers=tenant.admin
    )
    assert rate.status_code == 200
    client.post("/v1/fx-rates", json={"currency": "jpy", "rate": "0.0067"}, headers=tenant.admin)
    assert client.post("/v1/revenue", json=entry, headers=tenant.ingest).status_code == 200
    yen = {
        "revenue_id": "jp-1",
        "customer_id": "c",
        "amount_cents": 15000,
        "currency": "jpy",
        "month": "2026-03",
    }  # zero-decimal: 15,000 yen
    assert client.post("/v1/revenue", json=yen, headers=tenant.ingest).status_code == 200
    totals = client.get("/v1/pnl?month=2026-03", headers=tenant.read).json()["totals"]
    assert totals["revenue"] == "208.50"  # 108.00 + 100.50


def test_bad_revenue_and_bad_periods(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    before = db_state(engine)
    cases = [
        ({"customer_id": "c", "amount": "1", "month": "2026-03"}, "revenue_id"),
        ({"revenue_id": "r", "customer_id": "c", "amount": "abc", "month": "2026-03"}, "amount"),
        ({"revenue_id": "r", "customer_id": "c", "amount": "1.001", "month": "2026-03"}, "amount"),
        (
            {
                "revenue_id": "r",
                "customer_id": "c",
                "amount": "1",
                "amount_cents": 1,
                "month": "2026-03",
            },
            "amount",
        ),
        ({"revenue_id": "r", "customer_id": "c", "amount": "1", "month": "2026-13"}, "month"),
        (
            {
                "revenue_id": "r",
                "customer_id": "c",
                "amount": "1",
                "period_start": "2026-03-05",
                "period_end": "2026-03-01",
            },
            "period_end",
        ),
    ]
    for entry, field in cases:
        response = client.post("/v1/revenue", json=entry, headers=tenant.ingest)
        assert response.status_code == 422, entry
        assert response.json()["error"]["details"][0]["field"] == field, entry
    for query in (
        "month=2026-3",
        "from=2026-03-05&to=2026-03-01",
        "group_by=planet",
        "from=2026-01-01",
    ):
        assert client.get(f"/v1/pnl?{query}", headers=tenant.read).status_code == 422, query
    assert db_state(engine) == before


def test_revenue_ids_are_taken_exactly_as_sent(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    entry = {"revenue_id": "inv-1", "customer_id": "c", "amount": "40.00", "month": "2026-03"}
    body = revenue(client, tenant, [entry, {**entry, "revenue_id": "inv-1 "}])
    assert [(r["revenue_id"], r["status"]) for r in body["results"]] == [
        ("inv-1", "accepted"),
        ("inv-1 ", "accepted"),
    ]
    assert revenue(client, tenant, [{**entry, "revenue_id": "inv-1 "}])["duplicates"] == 1
    before = db_state(engine)
    for blank in ("", "   "):
        response = client.post(
            "/v1/revenue", json={**entry, "revenue_id": blank}, headers=tenant.ingest
        )
        assert response.status_code == 422, blank
        assert response.json()["error"]["details"][0]["field"] == "revenue_id"
    assert db_state(engine) == before
    totals = client.get("/v1/pnl?month=2026-03", headers=tenant.read).json()["totals"]
    assert totals["revenue"] == "80.00"


def test_null_currency_means_usd(client: TestClient, tenant: Tenant) -> None:
    entry = {"revenue_id": "n-1", "customer_id": "c", "amount": "12.00", "month": "2026-03"}
    body = revenue(client, tenant, [{**entry, "currency": None, "description": None}])
    assert body["accepted"] == 1 and body["results"][0]["amount_usd"] == "12.00"


def test_revenue_for_days_the_pnl_cannot_report_is_refused(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    today = date.today()
    far = today + timedelta(days=800)  # past the two years a period may start ahead
    near = today + timedelta(days=700)
    base = {"revenue_id": "r", "customer_id": "c", "amount": "10.00"}
    before = db_state(engine)
    cases = [
        ({"month": "9999-12"}, "month"),
        ({"month": "1969-12"}, "month"),
        ({"month": "0001-01"}, "month"),
        ({"month": f"{far:%Y-%m}"}, "month"),
        ({"period_start": "0001-01-01", "period_end": "0001-01-31"}, "period_start"),
        ({"period_start": "9999-01-01", "period_end": "9999-12-31"}, "period_start"),
        ({"period_start": far.isoformat(), "period_end": far.isoformat()}, "period_start"),
    ]
    for period, field in cases:
        response = client.post("/v1/revenue", json={**base, **period}, headers=tenant.ingest)
        assert response.status_code == 422, period
        assert response.json()["error"]["details"][0]["field"] == field, period
    assert db_state(engine) == before
    # A contract that starts within two years is fine, and shows in that month's P&L.
    ahead = {**base, "revenue_id": "ahead", "month": f"{near:%Y-%m}"}
    assert revenue(client, tenant, [ahead])["accepted"] == 1
    totals = client.get(f"/v1/pnl?month={near:%Y-%m}", headers=tenant.read).json()["totals"]
    assert totals["revenue"] == "10.00"
