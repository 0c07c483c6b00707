"""The budget guard: block budgets in the blocklist (ETag, 304), the check, and period rollover."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.app import create_app
from margindash.budgets.evaluator import evaluate_budgets
from margindash.budgets.guard import BudgetGuard
from margindash.budgets.notifiers import notifiers_from
from margindash.budgets.service import create_budget, list_budgets
from margindash.budgets.spec import parse_budget
from margindash.config import Settings
from margindash.pricing.service import Pricer
from tests.budgets.conftest import SmtpServer, ingest, midnight, settle, spend_events
from tests.conftest import Tenant, db_state


@pytest.fixture
def mail_client(alert_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(alert_settings)) as client:
        yield client


def test_a_block_budget_enters_the_blocklist_and_leaves_it_next_period(
    engine: Engine, tenant: Tenant, smtp_server: SmtpServer, alert_settings: Settings
) -> None:
    spec = parse_budget(
        {
            "name": "acct_1 daily",
            "scope": {"type": "customer", "value": "acct_1"},
            "period": "day",
            "limit_usd": "10.00",
            "thresholds": [],
            "action": "block",
            "notify": {"emails": ["ops@example.com"]},
        }
    )
    create_budget(engine, org_id=tenant.org.id, spec=spec, pricer=Pricer(engine))
    guard = BudgetGuard(engine)
    yesterday, today = midnight(-1), midnight(0)
    evening = yesterday + timedelta(hours=18)
    empty = guard.blocklist(tenant.org.id, now=evening)
    assert empty.rules == ()

    ingest(engine, tenant.org, spend_events("9.99", prefix="a", at=yesterday + timedelta(hours=1)))
    budgets = list_budgets(engine, org_id=tenant.org.id)
    notifiers = notifiers_from(alert_settings)
    result = evaluate_budgets(
        engine,
        org=tenant.org,
        budgets=budgets,
        settings=alert_settings,
        notifiers=notifiers,
        now=evening,
    )
    assert (result.new_alerts, result.blocks_changed) == ([], False)

    ingest(engine, tenant.org, spend_events("0.01", prefix="b", at=yesterday + timedelta(hours=2)))
    result = evaluate_budgets(
        engine,
        org=tenant.org,
        budgets=budgets,
        settings=alert_settings,
        notifiers=notifiers,
        now=evening,
    )
    assert result.blocks_changed and len(result.new_alerts) == 1
    guard.invalidate(tenant.org.id)
    blocked = guard.blocklist(tenant.org.id, now=evening)
    [rule] = blocked.rules
    assert (rule.scope.type, rule.scope.value, rule.until) == ("customer", "acct_1", today)
    assert blocked.version != empty.version
    assert blocked.blocking(customer_id="acct_1", feature="chat")
    assert not blocked.blocking(customer_id="acct_2", feature="chat")
    [mail] = smtp_server.wait_for(1)
    assert mail.subject == (
        "[margindash] acct_1 daily budget is now blocking calls: $10.00 of $10.00 (100%)"
    )

    # The next day is a new period: the block is gone without anyone touching anything.
    tomorrow_list = guard.blocklist(tenant.org.id, now=today + timedelta(seconds=1))
    assert tomorrow_list.rules == ()
    assert tomorrow_list.version == empty.version


def test_blocklist_over_http_with_etag_and_the_check(
    mail_client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    client = mail_client
    first = client.get("/v1/budgets/blocklist", headers=tenant.ingest)
    assert first.status_code == 200
    assert first.json() == {"version": first.json()["version"], "blocked": []}
    budget = client.post(
        "/v1/budgets",
        json={
            "name": "Images",
            "scope": {"type": "feature", "value": "image_generation"},
            "limit_usd": "5.00",
            "thresholds": [],
            "action": "block",
        },
        headers=tenant.admin,
    ).json()
    client.post(
        "/v1/usage", json={"events": spend_events("6.00", prefix="x")}, headers=tenant.ingest
    )
    settle(client)

    response = client.get("/v1/budgets/blocklist", headers=tenant.ingest)
    etag = response.headers["ETag"]
    assert etag != first.headers["ETag"]
    body = response.json()
    assert body["version"] == etag.strip('"')
    [entry] = body["blocked"]
    assert {k: entry[k] for k in ("type", "value", "budget_id", "budget_name")} == {
        "type": "feature",
        "value": "image_generation",
        "budget_id": budget["id"],
        "budget_name": "Images",
    }
    unchanged = client.get(
        "/v1/budgets/blocklist", headers={**tenant.ingest, "If-None-Match": etag}
    )
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["ETag"] == etag

    check = client.get(
        "/v1/budgets/check?customer_id=acct_9&feature=image_generation", headers=tenant.ingest
    ).json()
    assert check["allowed"] is False
    assert [b["budget_id"] for b in check["blocked_by"]] == [budget["id"]]
    other = client.get("/v1/budgets/check?customer_id=acct_9&feature=chat", headers=tenant.ingest)
    assert other.json()["allowed"] is True
    listed = client.get(f"/v1/budgets/{budget['id']}", headers=tenant.read).json()
    assert (listed["state"], listed["blocking"]) == ("blocked", True)

    # Guard endpoints need an ingest (or admin) key; read keys cannot see them.
    assert client.get("/v1/budgets/blocklist", headers=tenant.read).status_code == 403
    assert client.get("/v1/budgets/blocklist").status_code == 401
    before = db_state(engine)
    too_long = client.get(f"/v1/budgets/check?customer_id={'x' * 300}", headers=tenant.ingest)
    assert too_long.status_code == 422
    assert "customer_id" in too_long.json()["error"]["message"]
    assert db_state(engine) == before

    # Raising the limit lifts the block at once in this process.
    client.put(
        f"/v1/budgets/{budget['id']}",
        json={
            "name": "Images",
            "scope": {"type": "feature", "value": "image_generation"},
            "limit_usd": "50.00",
            "thresholds": [],
            "action": "block",
        },
        headers=tenant.admin,
    )
    settle(client)
    lifted = client.get("/v1/budgets/blocklist", headers={**tenant.ingest, "If-None-Match": etag})
    assert lifted.status_code == 200
    assert lifted.json()["blocked"] == []
    assert lifted.headers["ETag"] == first.headers["ETag"]


def test_re_pricing_reaches_the_guard_without_waiting_for_the_sweep(
    mail_client: TestClient, tenant: Tenant
) -> None:
    """Events of an unknown model cost nothing until an alias prices them: that re-pricing is
    spend like a commit, so a block budget it exhausts blocks at once."""
    client = mail_client
    budget = {
        "name": "Mystery",
        "scope": {"type": "feature", "value": "image_generation"},
        "limit_usd": "4.00",
        "thresholds": [],
        "action": "block",
    }
    assert client.post("/v1/budgets", json=budget, headers=tenant.admin).status_code == 201
    events = [{**e, "model_name": "prod-mystery-4o"} for e in spend_events("6.00", prefix="m")]
    client.post("/v1/usage", json={"events": events}, headers=tenant.ingest)
    settle(client)
    check = "/v1/budgets/check?feature=image_generation"
    assert client.get(check, headers=tenant.ingest).json()["allowed"] is True  # unpriced
    alias = {"alias": "prod-mystery-4o", "model": "gpt-4o"}
    added = client.post("/v1/pricing/aliases", json=alias, headers=tenant.admin)
    assert added.json()["repriced_events"] == len(events)
    settle(client)
    assert client.get(check, headers=tenant.ingest).json()["allowed"] is False
