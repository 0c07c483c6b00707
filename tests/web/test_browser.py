"""The dashboard in a real headless Chromium against `margindash serve` with the demo data.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright; no browser is ever
downloaded. Screenshots of every page go to a temporary directory, or to `docs/screenshots/`
with `MARGINDASH_UPDATE_SCREENSHOTS=1`.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from margindash.db.engine import make_engine
from margindash.orgs.service import create_org, find_org
from margindash.users.accounts import create_user
from tests.live_server import LiveServer, server_env
from tests.test_cli_e2e import run_cli

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWER = ("finance@example.com", "viewer password")
NEWCOMER = ("new@example.com", "newcomer password")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
        reason=f"{CHROMIUM} not installed (apt-get install chromium)",
    ),
]


@dataclass(frozen=True)
class Demo:
    """A server with the demo data: its address, the demo's login and API key."""

    url: str
    email: str
    password: str
    api_key: str

    def api(self, path: str, **params: str) -> dict:  # type: ignore[type-arg]
        response = httpx.get(
            f"{self.url}/v1{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    # On tmpfs when there is one: SQLite's durable commits make loading the demo slow on disk.
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    path = Path(tempfile.mkdtemp(prefix="margindash-browser-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(workdir: Path) -> Iterator[Demo]:
    url = f"sqlite:///{workdir / 'margindash.db'}"
    env = {**server_env(url), "COLUMNS": "300"}
    loaded = run_cli(env, "demo")
    assert loaded.returncode == 0, loaded.stderr
    login = re.search(r"log in as (\S+), admin\)\s+Password:\s+(\S+)", loaded.stdout)
    key = re.search(r"API key:\s+(md_admin_\S+)", loaded.stdout)
    assert login and key, loaded.stdout
    engine = make_engine(url)
    org = find_org(engine, "demo")
    assert org is not None
    create_user(engine, org_id=org.id, email=VIEWER[0], password=VIEWER[1], role="viewer")
    empty = create_org(engine, name="newcomer").org
    create_user(engine, org_id=empty.id, email=NEWCOMER[0], password=NEWCOMER[1], role="admin")
    engine.dispose()
    server = LiveServer(env, workdir)
    server.start()
    yield Demo(server.url, login.group(1), login.group(2), key.group(1))
    server.stop()
    assert server.server_errors() == [], server.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)  # type: ignore[arg-type]
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def log_in(page: Page, demo: Demo, email: str | None = None, password: str | None = None) -> None:
    page.goto(f"{demo.url}/login")
    page.get_by_label("E-mail").fill(email or demo.email)
    page.get_by_label("Password").fill(password or demo.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Log in")


def test_login_wrong_password_cookie_flags_and_logout(
    page: Page, context: BrowserContext, demo: Demo
) -> None:
    page.goto(f"{demo.url}/customers?period=last_month")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("E-mail").fill(demo.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong e-mail or password.")
    assert not any(c["name"] == "margindash_session" for c in context.cookies())

    page.get_by_label("Password").fill(demo.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers")  # back to `next`
    (cookie,) = [c for c in context.cookies() if c["name"] == "margindash_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain http on loopback; https sets Secure

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(f"{demo.url}/")
    expect(page).to_have_url(re.compile(r"/login"))


def _money(text: str) -> Decimal:
    """A shown amount (`$4,140.00`, with a minus sign when negative) as a Decimal."""
    return Decimal(re.sub(r"[^\d.]", "", text)) * (-1 if text.startswith("\u2212") else 1)


def test_overview_numbers_equal_the_api(page: Page, demo: Demo) -> None:
    log_in(page, demo)
    page.goto(f"{demo.url}/?period=last_month")
    month = page.locator("input[name=from]").input_value()[:7]
    api = demo.api("/pnl", month=month)["totals"]
    assert (api["revenue"], api["cost"], api["margin"], api["margin_pct"]) == (
        "12480.00",
        "8340.00",
        "4140.00",
        33.17,
    )  # the demo's calibrated month is the brief's sample dashboard
    for testid in ("revenue", "cost", "margin"):
        card = page.get_by_test_id(testid)
        assert card.get_attribute("data-value") == api[testid]
        assert _money(card.inner_text()) == Decimal(api[testid])
    expect(page.get_by_test_id("margin-pct")).to_have_text("33.17%")
    expect(page.locator("svg.chart path.line-revenue")).to_have_count(1)
    for period in ("this_month", "last_30", "last_90"):
        page.get_by_role("link", name=page_label(period), exact=True).click()
        start = page.locator("input[name=from]").input_value()
        end = page.locator("input[name=to]").input_value()
        totals = demo.api("/pnl", **{"from": start, "to": end})["totals"]
        assert page.get_by_test_id("cost").get_attribute("data-value") == totals["cost"]


def page_label(preset: str) -> str:
    return {"this_month": "This month", "last_30": "Last 30 days", "last_90": "Last 90 days"}[
        preset
    ]


def test_negative_customers_are_highlighted_and_sortable(page: Page, demo: Demo) -> None:
    log_in(page, demo)
    page.goto(f"{demo.url}/customers?period=last_month")
    plexo = page.locator('#table-customers tr[data-key="plexo-health"]')
    expect(plexo).to_have_class("row-negative")
    expect(plexo.locator("td").nth(3)).to_have_text("\u221218.84%")
    color = plexo.locator("td").nth(2).evaluate("cell => getComputedStyle(cell).color")
    assert color == "rgb(180, 35, 24)"  # --danger: 6.4:1 against the row's background
    expect(plexo.get_by_text("Negative 2 months in a row")).to_be_visible()
    expect(page.locator('#table-customers tr[data-key="helix-robotics"]')).not_to_have_class(
        "row-negative"
    )

    page.get_by_role("link", name="Revenue").click()
    expect(page.locator("th[aria-sort=descending]")).to_have_text(re.compile("Revenue"))
    revenues = [
        _money(t) for t in page.locator("#table-customers tbody td:nth-child(2)").all_inner_texts()
    ]
    assert revenues == sorted(revenues, reverse=True) and len(revenues) == 50
    page.get_by_role("link", name="Revenue").click()
    revenues = [
        _money(t) for t in page.locator("#table-customers tbody td:nth-child(2)").all_inner_texts()
    ]
    assert revenues == sorted(revenues)

    page.get_by_label("Search customers").fill("north")  # filtered as you type
    expect(page.locator("#table-customers tbody tr:visible")).to_have_count(1)
    page.get_by_role("link", name="northwind-labs").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("northwind-labs")
    expect(page.get_by_test_id("margin-pct")).to_have_text("\u221217.50%")


def test_csv_export_downloads_the_apis_numbers(page: Page, demo: Demo) -> None:
    log_in(page, demo)
    page.goto(f"{demo.url}/customers?period=last_month")
    month = page.locator("input[name=from]").input_value()[:7]
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    api = demo.api("/pnl", month=month, group_by="customer")["rows"]
    assert len(rows) == len(api) == 50
    for row, expected in zip(rows, api, strict=True):
        for field in ("key", "revenue", "cost", "margin", "margin_pct", "events", "action"):
            assert row[field] == str(expected[field])


def test_a_budget_created_in_the_ui_is_in_the_api(page: Page, demo: Demo) -> None:
    log_in(page, demo)
    page.goto(f"{demo.url}/budgets")
    # The demo's budgets include the brief's: Image Generation at 91% of $600.00.
    expect(page.locator('#table-budgets tr[data-key="Image Generation"]')).to_contain_text("91.00%")
    before = len(demo.api("/budgets")["budgets"])
    page.get_by_label("Name").fill("Plexo Health cap")
    page.get_by_label("Counts spending of").select_option("customer")
    page.get_by_label("Feature, customer or model").fill("plexo-health")
    page.get_by_label("Period").select_option("week")
    page.get_by_label("Limit (USD)").fill("80")
    page.get_by_label("E-mail alerts to").fill("eng-ops@example.com, cfo@example.com")
    page.get_by_role("button", name="Create budget").click()
    expect(page.get_by_text("Budget created.")).to_be_visible()
    expect(page.locator('#table-budgets tr[data-key="Plexo Health cap"]')).to_be_visible()
    budgets = {b["name"]: b for b in demo.api("/budgets")["budgets"]}
    assert len(budgets) == before + 1
    created = budgets["Plexo Health cap"]
    assert created["scope"] == {"type": "customer", "value": "plexo-health"}
    assert (created["period"], created["limit_usd"], created["thresholds"]) == (
        "week",
        "80.00",
        [75, 90],
    )
    assert created["notify"]["emails"] == ["eng-ops@example.com", "cfo@example.com"]
    row = page.locator('#table-budgets tr[data-key="Plexo Health cap"]')
    expect(row).to_contain_text(f"{created['used_pct']:.2f}%")


def test_the_simulator_returns_rows(page: Page, demo: Demo) -> None:
    log_in(page, demo)
    page.goto(f"{demo.url}/simulator?period=last_month")
    expect(page.locator("#table-savings tbody tr").first).to_be_visible()
    assert page.locator("#table-savings tbody tr").count() >= 6
    page.get_by_label("Feature").select_option("summarize")
    page.get_by_role("button", name="Simulate").click()
    features = page.locator("#table-savings tbody th").all_inner_texts()
    assert features and set(features) == {"summarize"}
    expect(page.get_by_text("LLM Stats (llm-stats.com), CC-BY-4.0")).to_be_visible()


def test_a_viewer_cannot_reach_settings(page: Page, demo: Demo) -> None:
    log_in(page, demo, *VIEWER)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link")).not_to_contain_text(
        ["Settings"]
    )
    response = page.goto(f"{demo.url}/settings")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Admins only")).to_be_visible()


def test_a_form_without_its_csrf_token_is_refused(page: Page, demo: Demo) -> None:
    log_in(page, demo)
    page.goto(f"{demo.url}/settings")
    keys_before = page.locator("#table-keys tbody tr").count()
    form = page.get_by_role("form", name="Create an API key")
    form.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    form.get_by_label("Name").fill("stolen")
    form.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Form expired")).to_be_visible()
    page.goto(f"{demo.url}/settings")
    expect(page.locator("#table-keys tbody tr")).to_have_count(keys_before)


def test_a_new_org_sees_how_to_send_its_first_event(page: Page, demo: Demo) -> None:
    log_in(page, demo, *NEWCOMER)
    expect(page.get_by_role("heading", name="Send your first usage event")).to_be_visible()
    expect(page.locator("#first-event-curl")).to_contain_text("/v1/usage")


def test_every_page_renders_and_is_captured(page: Page, demo: Demo) -> None:
    """Runs last: the budgets above show on the overview. Screenshots for the docs."""
    target = SCREENSHOTS if os.environ.get("MARGINDASH_UPDATE_SCREENSHOTS") else None
    out = target or Path(tempfile.mkdtemp(prefix="margindash-screenshots-"))
    out.mkdir(parents=True, exist_ok=True)
    page.goto(f"{demo.url}/login")
    page.screenshot(path=out / "login.png")
    log_in(page, demo)
    shots = {
        "overview": "/?period=last_month",
        "customers": "/customers?period=last_month",
        "customer": "/customers/plexo-health?period=last_month",
        "features": "/features?period=last_month",
        "models": "/models?period=last_month",
        "simulator": "/simulator?period=last_month",
        "budgets": "/budgets",
        "pricing": "/pricing?q=gpt-4o",
        "settings": "/settings",
    }
    for name, path in shots.items():
        response = page.goto(demo.url + path)
        assert response is not None and response.status == 200, path
        expect(page.locator("main")).to_be_visible()
        page.screenshot(path=out / f"{name}.png")
    assert len(list(out.glob("*.png"))) >= 10
    if target is None:
        shutil.rmtree(out)
