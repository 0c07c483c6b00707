"""Budgets, the simulator, pricing rules and the SMTP test through the dashboard's forms."""

from __future__ import annotations

import csv
import io
import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from margindash.app import create_app
from margindash.config import Settings
from margindash.db.tables import budgets, model_aliases
from tests.budgets.conftest import SmtpServer
from tests.web.conftest import ADMIN_EMAIL, VIEWER_EMAIL, Dashboard
from tests.web.helpers import csrf_token, login, seed_last_month

BUDGET = {
    "name": "Image Generation",
    "scope_type": "feature",
    "scope_value": "image_generation",
    "period": "month",
    "limit_usd": "600.00",
    "thresholds": "75, 90",
    "action": "warn",
    "emails": "eng-ops@example.com",
    "webhook_url": "",
}


def _budget_count(dashboard: Dashboard) -> int:
    with dashboard.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(budgets)).scalar_one())


def test_an_admin_creates_edits_and_deletes_a_budget(dashboard: Dashboard) -> None:
    client, read = dashboard.client, dashboard.tenant.read
    login(client, ADMIN_EMAIL)
    token = csrf_token(client.get("/budgets").text)
    created = client.post("/budgets", data={**BUDGET, "csrf_token": token})
    assert created.status_code == 200 and "Budget created." in created.text
    (budget,) = client.get("/v1/budgets", headers=read).json()["budgets"]
    assert budget["name"] == "Image Generation" and budget["limit_usd"] == "600.00"
    assert budget["scope"] == {"type": "feature", "value": "image_generation"}
    assert budget["thresholds"] == [75, 90]
    assert budget["notify"]["emails"] == ["eng-ops@example.com"]
    assert f'data-budget-id="{budget["id"]}"' in created.text

    edit_form = client.get(f"/budgets?edit={budget['id']}").text
    assert 'value="600.00"' in edit_form and f'action="/budgets/{budget["id"]}"' in edit_form
    edited = client.post(
        f"/budgets/{budget['id']}", data={**BUDGET, "limit_usd": "750", "csrf_token": token}
    )
    assert "Budget saved." in edited.text
    assert client.get("/v1/budgets", headers=read).json()["budgets"][0]["limit_usd"] == "750.00"
    exported = client.get("/budgets?export=budgets").text
    assert next(csv.DictReader(io.StringIO(exported)))["limit_usd"] == "750.00"

    deleted = client.post(f"/budgets/{budget['id']}/delete", data={"csrf_token": token})
    assert "Budget deleted" in deleted.text
    assert client.get("/v1/budgets", headers=read).json()["budgets"] == []
    missing = client.post(f"/budgets/{budget['id']}/delete", data={"csrf_token": token})
    assert missing.status_code == 404


def test_a_model_budget_from_the_form_names_the_model_as_events_are_booked(
    dashboard: Dashboard,
) -> None:
    client, read = dashboard.client, dashboard.tenant.read
    login(client, ADMIN_EMAIL)
    token = csrf_token(client.get("/budgets").text)
    form = {
        **BUDGET,
        "name": "Mini",
        "scope_type": "model",
        "scope_value": "gpt-4o-mini-2024-07-18",
    }
    assert "Budget created." in client.post("/budgets", data={**form, "csrf_token": token}).text
    (budget,) = client.get("/v1/budgets", headers=read).json()["budgets"]
    assert budget["scope"] == {"type": "model", "value": "gpt-4o-mini"}
    edited = {**form, "scope_value": "OpenAI/GPT-4o", "csrf_token": token}
    assert "Budget saved." in client.post(f"/budgets/{budget['id']}", data=edited).text
    (budget,) = client.get("/v1/budgets", headers=read).json()["budgets"]
    assert budget["scope"] == {"type": "model", "value": "gpt-4o"}


def test_a_bad_budget_names_its_fields_and_stores_nothing(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, ADMIN_EMAIL)
    token = csrf_token(client.get("/budgets").text)
    bad = {**BUDGET, "limit_usd": "-5", "thresholds": "75, lots", "emails": "not-an-address"}
    response = client.post("/budgets", data={**bad, "csrf_token": token})
    assert response.status_code == 422
    for field in ("limit_usd", "thresholds.1", "notify.emails"):
        assert f"<li>{field}:" in response.text, field
    assert 'value="75, lots"' in response.text  # what was typed is kept
    assert _budget_count(dashboard) == 0
    client.post("/budgets", data={**BUDGET, "csrf_token": token})
    duplicate = client.post("/budgets", data={**BUDGET, "csrf_token": token})
    assert duplicate.status_code == 422 and "already exists" in duplicate.text
    assert _budget_count(dashboard) == 1


def test_a_viewer_sees_budgets_but_cannot_change_them(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, VIEWER_EMAIL)
    page = client.get("/budgets")
    assert page.status_code == 200 and 'id="budget-form"' not in page.text
    refused = client.post("/budgets", data={**BUDGET, "csrf_token": csrf_token(page.text)})
    assert refused.status_code == 403
    assert _budget_count(dashboard) == 0


def test_budgets_show_on_the_overview_and_their_customer(dashboard: Dashboard) -> None:
    client = dashboard.client
    seed_last_month(client, dashboard.tenant.ingest)
    login(client, ADMIN_EMAIL)
    token = csrf_token(client.get("/budgets").text)
    customer_budget = {
        **BUDGET,
        "name": "Plexo cap",
        "scope_type": "customer",
        "scope_value": "plexo-loss",
    }
    for body in (BUDGET, customer_budget):
        assert client.post("/budgets", data={**body, "csrf_token": token}).status_code == 200
    overview = client.get("/").text
    assert "Image Generation" in overview and "Plexo cap" in overview
    customer = client.get("/customers/plexo-loss?period=last_month").text
    assert "Plexo cap" in customer and "Image Generation" not in customer


def test_the_simulator_shows_the_apis_rows(dashboard: Dashboard) -> None:
    client = dashboard.client
    month = seed_last_month(client, dashboard.tenant.ingest)
    login(client, VIEWER_EMAIL)
    page = client.get("/simulator?period=last_month")
    assert page.status_code == 200 and "Suggested swaps" in page.text
    assert "LLM Stats (llm-stats.com), CC-BY-4.0" in page.text
    api = client.post("/v1/simulate", json={"month": month}, headers=dashboard.tenant.read).json()
    exported = client.get("/simulator?period=last_month&export=savings").text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["feature"], r["model"], r["cost"], r["savings"]) for r in rows] == [
        (r["feature"], r["model"], r["cost"], r["savings"]) for r in api["rows"]
    ]
    assert rows, "the seeded usage gives the simulator rows"
    narrowed = client.get("/simulator?period=last_month&feature=chat&export=savings").text
    assert {r["feature"] for r in csv.DictReader(io.StringIO(narrowed))} == {"chat"}
    wrong = client.get("/simulator?period=last_month&min_quality=200")
    assert wrong.status_code == 200 and "min_quality" in wrong.text
    assert 'id="simulator-errors"' in wrong.text


def test_pricing_rules_price_unpriced_events(dashboard: Dashboard) -> None:
    client = dashboard.client
    event = {
        "request_id": "azure-1",
        "customer_id": "acme",
        "model_name": "prod-gpt4o",
        "prompt_tokens": 1_000_000,
        "completion_tokens": 0,
    }
    assert client.post("/v1/usage", json=event, headers=dashboard.tenant.ingest).status_code == 200
    login(client, ADMIN_EMAIL)
    page = client.get("/pricing")
    assert "prod-gpt4o" in page.text and "Price sync" in page.text
    token = csrf_token(page.text)
    typo = client.post(
        "/pricing/aliases", data={"alias": "prod-gpt4o", "model": "gpt-4oo", "csrf_token": token}
    )
    assert typo.status_code == 422 and "not in the price catalogue" in typo.text
    added = client.post(
        "/pricing/aliases", data={"alias": "prod-gpt4o", "model": "gpt-4o", "csrf_token": token}
    )
    assert added.status_code == 200
    assert "Alias added. 1 unpriced events are now priced." in added.text
    priced = client.get("/v1/usage/azure-1", headers=dashboard.tenant.read).json()
    assert priced["cost_usd"] == "2.50"

    custom = client.post(
        "/pricing/overrides",
        data={
            "kind": "custom",
            "model": "acme-llama-70b",
            "input_per_mtok": "0.20",
            "output_per_mtok": "0.60",
            "csrf_token": token,
        },
    )
    assert "Price rule added." in custom.text
    discount = client.post(
        "/pricing/overrides",
        data={"kind": "discount", "provider": "openai", "discount_pct": "10%", "csrf_token": token},
    )
    assert "Price rule added." in discount.text
    overrides = client.get("/v1/pricing/overrides", headers=dashboard.tenant.read).json()
    assert sorted(o["kind"] for o in overrides["overrides"]) == ["custom", "discount"]
    no_pct = client.post(
        "/pricing/overrides", data={"kind": "discount", "provider": "openai", "csrf_token": token}
    )
    assert no_pct.status_code == 422 and "discount_pct" in no_pct.text

    alias_id = re.search(r'action="/pricing/aliases/(\d+)/delete"', discount.text)
    assert alias_id
    removed = client.post(
        f"/pricing/aliases/{alias_id.group(1)}/delete", data={"csrf_token": token}
    )
    assert "Alias removed" in removed.text
    with dashboard.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(model_aliases)).scalar_one() == 0


def test_the_smtp_test_sends_a_real_email(settings: Settings, dashboard: Dashboard) -> None:
    server = SmtpServer()
    server.start()
    try:
        mail = settings.model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_starttls": False}
        )
        with TestClient(create_app(mail)) as client:
            login(client, ADMIN_EMAIL)
            token = csrf_token(client.get("/settings").text)
            sent = client.post(
                "/settings/smtp-test", data={"to": "ops@example.com", "csrf_token": token}
            )
            assert "Test e-mail sent" in sent.text
            (received,) = server.wait_for(1)
            assert received.rcpt_tos == ["ops@example.com"]
            assert received.subject == "margindash test e-mail for acme"
        server.stop()
        with TestClient(create_app(mail)) as client:
            login(client, ADMIN_EMAIL)
            token = csrf_token(client.get("/settings").text)
            failed = client.post("/settings/smtp-test", data={"csrf_token": token})
            assert failed.status_code == 502
            assert f"The test e-mail to {ADMIN_EMAIL} failed" in failed.text
    finally:
        server.stop()


def test_stripe_webhook_url_and_secret_status(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, ADMIN_EMAIL)
    page = client.get("/settings")
    org_id = dashboard.tenant.org.id
    assert f"http://127.0.0.1:8000/v1/stripe/webhook/{org_id}" in page.text
    assert "events are refused until a secret is set" in page.text
    token = csrf_token(page.text)
    bad = client.post("/settings/stripe", data={"webhook_secret": "sk_live_x", "csrf_token": token})
    assert bad.status_code == 422 and "whsec_" in bad.text
    saved = client.post(
        "/settings/stripe", data={"webhook_secret": "whsec_abcdefgh1234", "csrf_token": token}
    )
    assert "Stripe settings saved." in saved.text
    assert "<code>whsec_…1234</code>" in saved.text and "whsec_abcdefgh1234" not in saved.text
    api = client.get("/v1/stripe/settings", headers=dashboard.tenant.admin).json()
    assert api["webhook_secrets"] == ["whsec_…1234"]


def test_the_simulator_shows_an_unpriced_model_as_unpriced(dashboard: Dashboard) -> None:
    client = dashboard.client
    month = seed_last_month(client, dashboard.tenant.ingest)
    event = {
        "request_id": "llama-1",
        "customer_id": "acme-profit",
        "feature": "summarize",
        "model_name": "acme-llama-70b",
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "timestamp": f"{month}-10T12:00:00Z",
    }
    assert client.post("/v1/usage", json=event, headers=dashboard.tenant.ingest).status_code == 200
    login(client, VIEWER_EMAIL)
    page = client.get("/simulator?period=last_month").text
    row = re.search(r'<tr data-key="summarize/acme-llama-70b">.*?</tr>', page, re.S)
    assert row is not None
    assert "unpriced" in row.group(0) and "$0.00" not in row.group(0)
    assert "1 unpriced (cost unknown, not included)" in page
    exported = client.get("/simulator?period=last_month&export=savings").text
    (llama,) = [r for r in csv.DictReader(io.StringIO(exported)) if r["model"] == "acme-llama-70b"]
    assert llama["cost"] == "" and llama["savings"] == ""
