"""`/v1/budgets`: the brief's budget as written, figures, scopes, and every kind of bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.budgets.periods import budget_period
from margindash.budgets.service import create_budget, list_budgets
from margindash.budgets.spec import parse_budget
from margindash.budgets.status import budget_statuses, projected_nanos
from margindash.orgs.service import zone
from margindash.pricing.service import Pricer
from tests.budgets.conftest import ingest, spend_events
from tests.conftest import Tenant, db_state, make_tenant

BRIEF_BUDGET = {
    "budget": {
        "feature": "image_generation",
        "monthly_limit": 600.00,
        "warning_threshold_percent": 75,
        "critical_threshold_percent": 90,
        "notify_email": "eng-ops@example.com",
    }
}
API_BUDGET = {
    "name": "Chat",
    "scope": {"type": "feature", "value": "chat"},
    "period": "month",
    "limit_usd": "100.00",
    "thresholds": [75, 90],
    "action": "warn",
    "notify": {"emails": ["eng-ops@example.com"], "webhook_url": None},
}


def test_the_brief_budget_works_as_written(client: TestClient, tenant: Tenant) -> None:
    response = client.post("/v1/budgets", json=BRIEF_BUDGET, headers=tenant.admin)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("bud_")
    assert {k: body[k] for k in ("name", "scope", "period", "limit_usd", "thresholds")} == {
        "name": "Image Generation",
        "scope": {"type": "feature", "value": "image_generation"},
        "period": "month",
        "limit_usd": "600.00",
        "thresholds": [75, 90],
    }
    assert body["action"] == "warn"
    assert body["notify"] == {"emails": ["eng-ops@example.com"], "webhook_url": None}
    assert (body["spent_usd"], body["used_pct"], body["state"]) == ("0.00", 0.0, "ok")
    # The same budget in the API's own shape.
    response = client.post("/v1/budgets", json=API_BUDGET, headers=tenant.admin)
    assert response.status_code == 201, response.text
    listed = client.get("/v1/budgets", headers=tenant.read).json()
    assert listed["count"] == 2
    assert [b["name"] for b in listed["budgets"]] == ["Chat", "Image Generation"]


def test_budgets_show_spend_used_pct_projection_and_state(
    client: TestClient, tenant: Tenant
) -> None:
    created = client.post("/v1/budgets", json=API_BUDGET, headers=tenant.admin).json()
    events = [
        *spend_events("80.00", prefix="chat", feature="chat"),
        *spend_events("50.00", prefix="other", feature="summarize"),
    ]
    assert (
        client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).status_code == 200
    )
    budget = client.get(f"/v1/budgets/{created['id']}", headers=tenant.read).json()
    assert (budget["spent_usd"], budget["used_pct"], budget["state"]) == ("80.00", 80.0, "warning")
    period = budget_period("month", zone=zone("UTC"), now=datetime.now(UTC))
    assert (budget["period_start"], budget["period_end"]) == (
        period.first_day.isoformat(),
        period.last_day.isoformat(),
    )
    if budget["projected_usd"] is not None:
        assert Decimal(budget["projected_usd"]) >= Decimal("80.00")
    assert budget["alerts"] == (
        ["projected_to_exceed"]
        if budget["projected_usd"] and Decimal(budget["projected_usd"]) > 100
        else []
    )


def test_projection_is_the_pace_so_far_and_waits_for_a_tenth_of_the_period() -> None:
    november = budget_period("month", zone=zone("UTC"), now=datetime(2026, 11, 16, tzinfo=UTC))
    # Half of November gone, $50 spent: on pace for $100.
    half_way = datetime(2026, 11, 16, tzinfo=UTC)
    assert projected_nanos(50_000_000_000, november, half_way) == 100_000_000_000
    # Two days in: too early to project.
    assert projected_nanos(5_000_000_000, november, datetime(2026, 11, 3, tzinfo=UTC)) is None


def test_state_goes_ok_warning_critical_exceeded(engine: Engine, tenant: Tenant) -> None:
    create_budget(
        engine, org_id=tenant.org.id, spec=parse_budget(BRIEF_BUDGET), pricer=Pricer(engine)
    )
    budget = list_budgets(engine, org_id=tenant.org.id)[0]
    seen = []
    for step, amount in enumerate(("0.00", "450.00", "90.00", "60.00")):
        ingest(engine, tenant.org, spend_events(amount, prefix=f"step{step}"))
        status = budget_statuses(engine, org=tenant.org, budgets=[budget], now=datetime.now(UTC))[0]
        seen.append((status.used_pct, status.state))
    assert seen == [(0.0, "ok"), (75.0, "warning"), (90.0, "critical"), (100.0, "exceeded")]


def test_every_scope_type(client: TestClient, tenant: Tenant) -> None:
    scopes: list[dict[str, Any]] = [
        {"type": "org"},
        {"type": "customer", "value": "acct_1"},
        {"type": "model", "value": "gpt-4o"},
        {"type": "customer_feature", "customer_id": "acct_1", "feature": "chat"},
        {"type": "customer_feature", "value": "acct_2:chat"},
    ]
    for index, scope in enumerate(scopes):
        body = {"name": f"b{index}", "scope": scope, "limit_usd": "10", "period": "week"}
        response = client.post("/v1/budgets", json=body, headers=tenant.admin)
        assert response.status_code == 201, response.text
    events = [
        *spend_events("1.00", prefix="a", customer_id="acct_1", feature="chat"),
        *spend_events("2.00", prefix="b", customer_id="acct_2", feature="chat"),
        *spend_events("4.00", prefix="c", customer_id="acct_1", feature="summarize"),
    ]
    client.post("/v1/usage", json={"events": events}, headers=tenant.ingest)
    listed = {
        b["name"]: b for b in client.get("/v1/budgets", headers=tenant.read).json()["budgets"]
    }
    assert {name: b["spent_usd"] for name, b in listed.items()} == {
        "b0": "7.00",
        "b1": "5.00",
        "b2": "7.00",
        "b3": "1.00",
        "b4": "2.00",
    }
    assert listed["b4"]["scope"] == {
        "type": "customer_feature",
        "value": "acct_2:chat",
        "customer_id": "acct_2",
        "feature": "chat",
    }
    assert listed["b0"]["scope"] == {"type": "org", "value": None}


def _with(**changes: Any) -> dict[str, Any]:
    return {**API_BUDGET, **changes}


BAD_BODIES = [
    (_with(limit_usd=None), "limit_usd"),
    (_with(limit_usd="-5"), "limit_usd"),
    (_with(limit_usd="abc"), "limit_usd"),
    (_with(limit_usd="0.0000000001"), "limit_usd"),
    (_with(period="year"), "period"),
    (_with(thresholds=[75, "high"]), "thresholds.1"),
    (_with(thresholds=[0]), "thresholds.0"),
    (_with(thresholds=[75, 75]), "thresholds"),
    (_with(thresholds=[1001]), "thresholds.0"),
    (_with(action="stop"), "action"),
    (_with(notify={"emails": ["not-an-address"]}), "notify.emails"),
    (_with(notify={"webhook_url": "ftp://example.com/x"}), "notify.webhook_url"),
    (_with(notify={"webhook_url": "http://[::1"}), "notify.webhook_url"),  # was a 500
    (_with(notify={"webhook_url": "http://hooks.example.com:99999/x"}), "notify.webhook_url"),
    (_with(name="Evil\nBcc: victim@example.com"), "name"),  # a line break ends a mail header
    (_with(scope={"type": "customer", "value": "a\tb"}), "scope.value"),
    (_with(notify={"email": "a@example.com"}), "notify.email"),
    (_with(scope={"type": "planet", "value": "x"}), "scope.type"),
    (_with(scope={"type": "feature"}), "scope.value"),
    (_with(scope="chat"), "scope"),
    (_with(name=""), "name"),
    (_with(colour="red"), "colour"),
    ({"budget": {"feature": "x", "warning_threshold_percent": 75}}, "budget.monthly_limit"),
    (
        {"budget": {"feature": "x", "monthly_limit": 10, "notify_email": "nope"}},
        "budget.notify_email",
    ),
    ({"budget": {"model": "m", "feature": "x", "monthly_limit": 10}}, "budget.model"),
    ([API_BUDGET], "body"),
]


def test_bad_budgets_are_rejected_naming_the_field_and_nothing_is_written(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    for body, field in BAD_BODIES:
        response = client.post("/v1/budgets", json=body, headers=tenant.admin)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert field in [d["field"] for d in error["details"]], (field, error)
        assert field in error["message"]
    assert db_state(engine) == before


def test_malformed_unauthorised_and_conflicting_requests(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    malformed = client.post(
        "/v1/budgets",
        content=b"{not json",
        headers={**tenant.admin, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert client.post("/v1/budgets", json=API_BUDGET).status_code == 401
    assert client.post("/v1/budgets", json=API_BUDGET, headers=tenant.read).status_code == 403
    assert client.post("/v1/budgets", json=API_BUDGET, headers=tenant.ingest).status_code == 403
    assert client.get("/v1/budgets", headers=tenant.ingest).status_code == 403
    assert db_state(engine) == before
    assert client.post("/v1/budgets", json=API_BUDGET, headers=tenant.admin).status_code == 201
    before = db_state(engine)
    duplicate = client.post("/v1/budgets", json=API_BUDGET, headers=tenant.admin)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "budget_exists"
    assert db_state(engine) == before


def test_replace_and_delete_and_other_orgs_see_nothing(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    created = client.post("/v1/budgets", json=API_BUDGET, headers=tenant.admin).json()
    url = f"/v1/budgets/{created['id']}"
    replaced = client.put(url, json=_with(limit_usd="250.00", action="block"), headers=tenant.admin)
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["limit_usd"], replaced.json()["action"]) == ("250.00", "block")
    before = db_state(engine)
    bad = client.put(url, json=_with(period="fortnight"), headers=tenant.admin)
    assert bad.status_code == 422
    assert db_state(engine) == before

    other = make_tenant(engine, "other-org")
    assert client.get(url, headers=other.read).status_code == 404
    assert client.put(url, json=API_BUDGET, headers=other.admin).status_code == 404
    assert client.delete(url, headers=other.admin).status_code == 404
    assert client.get("/v1/budgets", headers=other.read).json()["count"] == 0

    deleted = client.delete(url, headers=tenant.admin)
    assert deleted.json() == {"id": created["id"], "deleted": True}
    assert client.get(url, headers=tenant.read).status_code == 404
    assert client.delete(url, headers=tenant.admin).status_code == 404


def test_week_and_day_periods_follow_the_org_time_zone(engine: Engine) -> None:
    tokyo = make_tenant(engine, "tokyo", timezone="Asia/Tokyo").org
    # 2026-11-29 16:00 UTC is Monday 2026-11-30 01:00 in Tokyo: a new day and a new week.
    now = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
    week = budget_period("week", zone=tokyo.zone, now=now)
    day = budget_period("day", zone=tokyo.zone, now=now)
    month = budget_period("month", zone=tokyo.zone, now=now)
    assert (week.first_day.isoformat(), week.last_day.isoformat()) == ("2026-11-30", "2026-12-06")
    assert week.starts_at == datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
    assert day.first_day.isoformat() == "2026-11-30"
    assert (month.first_day.isoformat(), month.last_day.isoformat()) == (
        "2026-11-01",
        "2026-11-30",
    )
    assert month.ends_at - month.starts_at == timedelta(days=30)


def test_a_limit_round_trips_with_every_digit(client: TestClient, tenant: Tenant) -> None:
    """A GET answer sent back with PUT leaves the budget as it was: no rounding to the cent
    (a changed limit would re-arm its alerts)."""
    body = _with(name="Tiny", limit_usd="0.015")
    created = client.post("/v1/budgets", json=body, headers=tenant.admin).json()
    assert created["limit_usd"] == "0.015"
    fetched = client.get(f"/v1/budgets/{created['id']}", headers=tenant.read).json()
    editable = {k: fetched[k] for k in ("name", "scope", "period", "limit_usd", "thresholds")}
    put = client.put(
        f"/v1/budgets/{created['id']}",
        json={**editable, "action": fetched["action"], "notify": fetched["notify"]},
        headers=tenant.admin,
    )
    assert put.status_code == 200, put.text
    assert put.json()["limit_usd"] == "0.015"
