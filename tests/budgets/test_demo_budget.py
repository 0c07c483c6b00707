"""Done-when of the budgets issue, on the demo data: the brief's budget e-mails at 75% and 90%.

The demo spends about $1,700 a month on image_generation, so the brief's $600 budget would be
far past 100% on the demo's own current month. The demo is loaded to end on the last day of
last month; this month then starts empty and the test spends it up to 91%.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from margindash.app import create_app
from margindash.budgets.service import delete_budget, list_budgets
from margindash.db.engine import make_engine
from margindash.demo import load_demo
from margindash.ledger.ingest import UsageIngestor, event_rules
from margindash.orgs.keys import create_api_key
from margindash.orgs.service import create_org
from margindash.pricing.service import Pricer
from tests.budgets.conftest import SmtpServer, mail_settings, settle, spend_events

BRIEF_BUDGET = {
    "budget": {
        "feature": "image_generation",
        "monthly_limit": 600.00,
        "warning_threshold_percent": 75,
        "critical_threshold_percent": 90,
        "notify_email": "eng-ops@example.com",
    }
}


@pytest.mark.slow
def test_the_brief_budget_on_the_demo_data_emails_at_75_and_90_and_shows_91(
    sqlite_url: str, smtp_server: SmtpServer
) -> None:
    settings = mail_settings(sqlite_url, smtp_server.port)
    engine = make_engine(sqlite_url)
    org = create_org(engine, name="demo").org
    ingestor = UsageIngestor(engine=engine, pricer=Pricer(engine), rules=event_rules(settings))
    last_month_end = datetime.now(UTC).date().replace(day=1) - timedelta(days=1)
    summary = load_demo(ingestor, org=org, today=last_month_end)
    assert summary.events > 100_000
    # The demo creates the brief's budget itself; this test creates it through the API.
    for budget in list_budgets(engine, org_id=org.id):
        delete_budget(engine, org_id=org.id, budget_id=budget.id)
    admin = {"Authorization": f"Bearer {create_api_key(engine, org_id=org.id, scope='admin')}"}
    engine.dispose()

    with TestClient(create_app(settings)) as client:
        created = client.post("/v1/budgets", json=BRIEF_BUDGET, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["spent_usd"] == "0.00"
        # Spread over the demo's customers, in batches, as an app would send it.
        customers = ["acme-corp", "plexo-health", "helix-robotics", "northwind-labs"]
        for index, customer in enumerate(customers):
            events = spend_events(
                "136.50", prefix=f"imggen-{index}", customer_id=customer, feature="image_generation"
            )
            response = client.post("/v1/usage", json={"events": events}, headers=admin)
            assert response.json()["accepted"] == len(events)
        settle(client)

        received = smtp_server.wait_for(2)
        budgets = client.get("/v1/budgets", headers=admin).json()["budgets"]
        alerts = client.get("/v1/alerts", headers=admin).json()["alerts"]

    assert sorted(m.subject for m in received) == [
        "[margindash] Image Generation budget passed 75%: $546.00 of $600.00 (91%)",
        "[margindash] Image Generation budget passed 90%: $546.00 of $600.00 (91%)",
    ]
    assert all(m.rcpt_tos == ["eng-ops@example.com"] for m in received)
    [budget] = budgets
    assert (budget["name"], budget["spent_usd"], budget["used_pct"]) == (
        "Image Generation",
        "546.00",
        91.0,
    )
    assert budget["state"] == "critical"
    assert [a["status"] for a in alerts] == ["delivered", "delivered"]
