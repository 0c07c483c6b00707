"""The dashboard over HTTP (in-process), on SQLite and PostgreSQL: auth, CSRF, roles, numbers."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from margindash.app import create_app
from margindash.config import Settings
from margindash.db.tables import api_keys, user_sessions
from margindash.users.accounts import create_user
from tests.web.conftest import ADMIN_EMAIL, VIEWER_EMAIL, Dashboard
from tests.web.helpers import PASSWORD, csrf_token, login, seed_last_month

PAGES = ["/", "/customers", "/features", "/models", "/pricing", "/simulator", "/budgets"]


def _cookie_header(response: object, name: str) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    return next(h for h in headers if h.startswith(f"{name}="))


def test_pages_need_a_login(dashboard: Dashboard) -> None:
    for path in [*PAGES, "/settings", "/customers/acme"]:
        response = dashboard.client.get(path + "?period=last_month", follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=" + path.replace("/", "/"))


def test_login_sets_a_safe_session_cookie_and_logout_ends_it(dashboard: Dashboard) -> None:
    client = dashboard.client
    page = client.get("/login?next=/customers%3Fperiod%3Dlast_month")
    assert (
        page.status_code == 200 and 'name="next" value="/customers?period=last_month"' in page.text
    )
    response = client.post(
        "/login",
        data={
            "email": ADMIN_EMAIL,
            "password": PASSWORD,
            "csrf_token": csrf_token(page.text),
            "next": "/customers?period=last_month",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/customers?period=last_month"
    cookie = _cookie_header(response, "margindash_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http on loopback
    overview = client.get("/")
    assert overview.status_code == 200 and ADMIN_EMAIL in overview.text
    assert overview.headers["content-security-policy"].startswith("default-src 'self'")

    logout = client.post(
        "/logout", data={"csrf_token": csrf_token(overview.text)}, follow_redirects=False
    )
    assert logout.status_code == 303 and logout.headers["location"] == "/login"
    with dashboard.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(user_sessions)).scalar_one() == 0
    assert client.get("/", follow_redirects=False).status_code == 303


def test_cookies_are_secure_behind_https(settings: Settings, dashboard: Dashboard) -> None:
    # Reached over https (directly or through a proxy uvicorn trusts).
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        page = client.get("/login")
        assert "secure" in _cookie_header(page, "margindash_login_csrf").lower()
        response = client.post(
            "/login",
            data={"email": ADMIN_EMAIL, "password": PASSWORD, "csrf_token": csrf_token(page.text)},
            follow_redirects=False,
        )
        assert "secure" in _cookie_header(response, "margindash_session").lower()
    # Or published at an https address while the app itself sees plain http.
    published = settings.model_copy(update={"public_url": "https://margins.example.com"})
    with TestClient(create_app(published)) as client:
        assert "secure" in _cookie_header(client.get("/login"), "margindash_login_csrf").lower()


def test_a_wrong_password_is_refused_and_throttled(
    settings: Settings, dashboard: Dashboard
) -> None:
    strict = settings.model_copy(update={"login_max_failures": 2})
    with TestClient(create_app(strict)) as client:
        for _ in range(2):
            page = client.get("/login")
            response = client.post(
                "/login",
                data={
                    "email": ADMIN_EMAIL,
                    "password": "nope" * 3,
                    "csrf_token": csrf_token(page.text),
                },
            )
            assert response.status_code == 401
            assert "Wrong e-mail or password." in response.text
            assert "margindash_session" not in response.cookies
        page = client.get("/login")
        response = client.post(
            "/login",
            data={"email": ADMIN_EMAIL, "password": PASSWORD, "csrf_token": csrf_token(page.text)},
        )
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0
        assert "Too many failed logins" in response.text


def test_next_never_leaves_the_site(dashboard: Dashboard) -> None:
    client = dashboard.client
    for target in ("https://evil.example", "//evil.example", "/\\evil.example"):
        client.cookies.clear()
        page = client.get("/login")
        response = client.post(
            "/login",
            data={
                "email": ADMIN_EMAIL,
                "password": PASSWORD,
                "csrf_token": csrf_token(page.text),
                "next": target,
            },
            follow_redirects=False,
        )
        assert response.headers["location"] == "/"


def test_forms_without_the_csrf_token_are_refused(dashboard: Dashboard) -> None:
    client = dashboard.client
    page = client.get("/login")
    no_token = client.post("/login", data={"email": ADMIN_EMAIL, "password": PASSWORD})
    assert no_token.status_code == 403 and "margindash_session" not in no_token.cookies
    wrong = client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert wrong.status_code == 403
    assert csrf_token(page.text)

    login(client, ADMIN_EMAIL)
    with dashboard.engine.connect() as conn:
        keys_before = conn.execute(select(func.count()).select_from(api_keys)).scalar_one()
    for path, data in (
        ("/settings/keys", {"scope": "admin", "name": "stolen"}),
        ("/settings/users", {"email": "mallory@example.com", "role": "admin"}),
        ("/settings/org", {"timezone": "Europe/Paris"}),
        ("/logout", {}),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 403, path
        assert "Form expired" in response.text
        forged = client.post(path, data={**data, "csrf_token": "x" * 43})
        assert forged.status_code == 403, path
    with dashboard.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(api_keys)).scalar_one() == keys_before
    assert client.get("/").status_code == 200  # still logged in


def test_a_viewer_reads_reports_but_not_settings(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, VIEWER_EMAIL)
    overview = client.get("/")
    assert overview.status_code == 200
    assert 'href="/settings' not in overview.text
    settings_page = client.get("/settings")
    assert settings_page.status_code == 403 and "Admins only" in settings_page.text
    response = client.post(
        "/settings/keys", data={"scope": "admin", "csrf_token": csrf_token(overview.text)}
    )
    assert response.status_code == 403
    for path in PAGES:
        assert client.get(path).status_code == 200, path


def test_an_admin_manages_api_keys(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, ADMIN_EMAIL)
    page = client.get("/settings")
    assert page.status_code == 200
    created = client.post(
        "/settings/keys",
        data={"scope": "read", "name": "metabase", "csrf_token": csrf_token(page.text)},
    )
    assert created.status_code == 200
    secret = re.search(r'<code id="new-key">(md_read_[^<]+)</code>', created.text)
    assert secret, created.text
    read = {"Authorization": f"Bearer {secret.group(1)}"}
    assert client.get("/v1/pnl", headers=read).status_code == 200
    assert "metabase" in created.text and secret.group(1)[-4:] in created.text

    key_id = re.search(r'data-key="(key_[0-9a-f]+)">\s*<th scope="row">metabase', created.text)
    assert key_id
    revoked = client.post(
        f"/settings/keys/{key_id.group(1)}/revoke",
        data={"csrf_token": csrf_token(created.text)},
        follow_redirects=True,
    )
    assert revoked.status_code == 200 and "was revoked" in revoked.text
    assert client.get("/v1/pnl", headers=read).status_code == 401
    exported = client.get("/settings?export=keys").text
    keys = {row["name"]: row for row in csv.DictReader(io.StringIO(exported))}
    assert keys["metabase"]["revoked_at"] and keys["metabase"]["hint"] == secret.group(1)[-4:]
    assert secret.group(1) not in exported

    bad = client.post(
        "/settings/keys", data={"scope": "root", "csrf_token": csrf_token(created.text)}
    )
    assert bad.status_code == 422 and "unknown scope" in bad.text


def test_an_admin_adds_a_user_who_can_log_in(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, ADMIN_EMAIL)
    page = client.get("/settings")
    added = client.post(
        "/settings/users",
        data={"email": "cfo@example.com", "role": "viewer", "csrf_token": csrf_token(page.text)},
    )
    assert added.status_code == 200
    password = re.search(r'<code id="new-password">([^<]+)</code>', added.text)
    assert password
    with TestClient(client.app) as other:
        login(other, "cfo@example.com", password.group(1))
        assert other.get("/settings").status_code == 403
    again = client.post(
        "/settings/users",
        data={"email": "cfo@example.com", "role": "admin", "csrf_token": csrf_token(page.text)},
    )
    assert again.status_code == 422 and "already exists" in again.text


def test_org_time_zone_and_currency(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, ADMIN_EMAIL)
    token = csrf_token(client.get("/settings").text)
    saved = client.post("/settings/org", data={"timezone": "Europe/Paris", "csrf_token": token})
    assert saved.status_code == 200 and "Organisation settings saved." in saved.text
    assert "<option selected>Europe/Paris</option>" in saved.text
    assert "times in Europe/Paris" in saved.text
    bad = client.post("/settings/org", data={"timezone": "Mars/Olympus", "csrf_token": token})
    assert bad.status_code == 422 and "unknown time zone" in bad.text
    # Costs are USD (model prices): a report in another currency would mix the two.
    refused = client.post("/settings/org", data={"currency": "gbp", "csrf_token": token})
    assert refused.status_code == 422
    assert "reports are in USD" in refused.text
    assert 'name="currency" value="USD"' in refused.text
    kept = client.post("/settings/org", data={"currency": "usd", "csrf_token": token})
    assert kept.status_code == 200 and 'name="currency" value="USD"' in kept.text


def test_a_new_org_is_told_how_to_send_its_first_event(dashboard: Dashboard) -> None:
    login(dashboard.client, ADMIN_EMAIL)
    page = dashboard.client.get("/")
    assert "Send your first usage event" in page.text
    assert 'curl -X POST "http://127.0.0.1:8000/v1/usage"' in page.text
    customers = dashboard.client.get("/customers")
    assert "No customers in this period." in customers.text


def test_overview_and_customers_show_the_apis_numbers(dashboard: Dashboard) -> None:
    client = dashboard.client
    month = seed_last_month(client, dashboard.tenant.ingest)
    api = client.get(f"/v1/pnl?month={month}", headers=dashboard.tenant.read).json()
    login(client, VIEWER_EMAIL)
    overview = client.get("/?period=last_month").text
    totals = api["totals"]
    for testid in ("revenue", "cost", "margin"):
        assert f'data-testid="{testid}" data-value="{totals[testid]}"' in overview
    assert f'data-testid="margin-pct" data-value="{totals["margin_pct"]}"' in overview
    assert "plexo-loss" in overview  # a customer to act on

    page = client.get("/customers?period=last_month").text
    assert re.search(r'<tr class="row-negative" data-key="plexo-loss">', page)
    assert not re.search(r'<tr class="row-negative" data-key="acme-profit">', page)
    assert "Reprice or throttle" in page

    exported = client.get("/customers?period=last_month&export=customers")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["key"] for r in rows] == [r["key"] for r in api["rows"]]
    for row, expected in zip(rows, api["rows"], strict=True):
        for field in ("revenue", "cost", "margin", "margin_pct", "events", "action"):
            assert row[field] == str(expected[field]), field


def test_customers_sort_and_search(dashboard: Dashboard) -> None:
    client = dashboard.client
    seed_last_month(client, dashboard.tenant.ingest)
    login(client, ADMIN_EMAIL)

    def keys(query: str) -> list[str]:
        page = client.get(f"/customers?period=last_month&{query}").text
        return re.findall(r'<tr(?: class="row-negative")? data-key="([^"]+)"', page)

    assert keys("") == ["plexo-loss", "acme-profit"]  # worst margin first
    assert keys("sort=revenue&dir=desc") == ["acme-profit", "plexo-loss"]
    assert keys("sort=revenue&dir=asc") == ["plexo-loss", "acme-profit"]
    assert keys("sort=key&dir=asc") == ["acme-profit", "plexo-loss"]
    assert keys("q=PLEXO") == ["plexo-loss"]
    assert keys("sort=nonsense") == ["plexo-loss", "acme-profit"]


def test_a_models_search_finds_the_model_a_spelling_is_booked_as(dashboard: Dashboard) -> None:
    client = dashboard.client
    month = seed_last_month(client, dashboard.tenant.ingest)
    mini = {
        "request_id": "mini",
        "customer_id": "acme-profit",
        "model_name": "gpt-4o-mini-2024-07-18",
        "prompt_tokens": 1000,
        "completion_tokens": 1000,
        "timestamp": f"{month}-10T12:00:00Z",
    }
    ingested = client.post("/v1/usage", json=mini, headers=dashboard.tenant.ingest)
    assert ingested.status_code == 200, ingested.text
    login(client, VIEWER_EMAIL)

    def keys(search: str) -> list[str]:
        page = client.get("/models", params={"period": "last_month", "q": search}).text
        return re.findall(r'<tr(?: class="row-negative")? data-key="([^"]+)"', page)

    assert keys("gpt-4o") == ["gpt-4o", "gpt-4o-mini"]  # a search still matches any part
    assert keys("openai/gpt-4o") == ["gpt-4o"]
    assert keys("gpt-4o-2024-08-06") == ["gpt-4o"]
    assert keys(" GPT-4o-mini-2024-07-18") == ["gpt-4o-mini"]
    assert keys("claude-3-5-haiku-latest") == []
    exported = client.get(
        "/models", params={"period": "last_month", "q": "openai/gpt-4o", "export": "models"}
    ).text
    assert [r["key"] for r in csv.DictReader(io.StringIO(exported))] == ["gpt-4o"]


def test_customer_page_features_and_models(dashboard: Dashboard) -> None:
    client = dashboard.client
    month = seed_last_month(client, dashboard.tenant.ingest)
    login(client, ADMIN_EMAIL)
    page = client.get("/customers/plexo-loss?period=last_month")
    assert page.status_code == 200
    api = client.get(
        f"/v1/customers/plexo-loss/pnl?month={month}", headers=dashboard.tenant.read
    ).json()
    assert f'data-testid="cost" data-value="{api["totals"]["cost"]}"' in page.text
    assert "summarize" in page.text and "translate" in page.text and "gpt-4o" in page.text
    features = client.get("/customers/plexo-loss?period=last_month&export=features")
    rows = list(csv.DictReader(io.StringIO(features.text)))
    assert {r["key"]: r["cost"] for r in rows} == {f["key"]: f["cost"] for f in api["features"]}
    assert client.get("/customers/nobody?period=last_month").status_code == 404
    assert client.get("/customers/plexo-loss?export=nonsense").status_code == 404

    for path, table in (("/features", "features"), ("/models", "models")):
        response = client.get(f"{path}?period=last_month")
        assert response.status_code == 200
        group = table.removesuffix("s")
        api_rows = client.get(
            f"/v1/pnl?month={month}&group_by={group}", headers=dashboard.tenant.read
        ).json()["rows"]
        exported = client.get(f"{path}?period=last_month&export={table}").text
        assert [r["cost"] for r in csv.DictReader(io.StringIO(exported))] == [
            r["cost"] for r in api_rows
        ]


def test_period_picker(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, ADMIN_EMAIL)
    custom = client.get("/customers?from=2026-01-01&to=2026-01-31").text
    assert "1 \u2013 31 Jan 2026" in custom
    assert 'value="2026-01-01"' in custom
    for query in ("from=2026-02-01&to=2026-01-01", "from=yesterday&to=today", "period=decade"):
        page = client.get(f"/customers?{query}")
        assert page.status_code == 200
        assert "Showing this month instead." in page.text
    nav = client.get("/?period=last_90").text
    assert 'href="/customers?period=last_90"' in nav


def test_pricing_catalogue_search(dashboard: Dashboard) -> None:
    client = dashboard.client
    login(client, VIEWER_EMAIL)
    page = client.get("/pricing?q=gpt-4o-mini")
    assert page.status_code == 200 and "gpt-4o-mini" in page.text
    exported = client.get("/pricing?q=gpt-4o-mini&export=catalogue").text
    rows = list(csv.DictReader(io.StringIO(exported)))
    api = client.get("/v1/models?q=gpt-4o-mini", headers=dashboard.tenant.read).json()["models"]
    assert [(r["provider"], r["model"], r["input_per_mtok"]) for r in rows] == [
        (m["provider"], m["model"], m["input_per_mtok"]) for m in api
    ]


def test_unpriced_events_are_flagged(dashboard: Dashboard) -> None:
    client = dashboard.client
    event = {
        "request_id": "u1",
        "customer_id": "acme",
        "model_name": "acme-llama-70b",
        "prompt_tokens": 10,
        "completion_tokens": 10,
    }
    assert client.post("/v1/usage", json=event, headers=dashboard.tenant.ingest).status_code == 200
    login(client, ADMIN_EMAIL)
    overview = client.get("/?period=last_30").text
    assert "1 events in this period are unpriced" in overview
    assert "<code>acme-llama-70b</code>" in overview
    assert "acme-llama-70b" in client.get("/pricing").text


@pytest.mark.parametrize("path", ["/static/app.css", "/static/app.js", "/static/favicon.svg"])
def test_assets_are_served_locally(dashboard: Dashboard, path: str) -> None:
    response = dashboard.client.get(path)
    assert response.status_code == 200 and len(response.content) > 100


def test_no_page_loads_anything_from_elsewhere(dashboard: Dashboard) -> None:
    client = dashboard.client
    seed_last_month(client, dashboard.tenant.ingest)
    create_user(
        dashboard.engine,
        org_id=dashboard.tenant.org.id,
        email="ops@example.com",
        password=PASSWORD,
        role="admin",
    )
    login(client, "ops@example.com")
    for path in [*PAGES, "/settings", "/customers/plexo-loss"]:
        html = client.get(path + "?period=last_month").text
        assert not re.search(r'(src|href)="(https?:)?//', html), path
