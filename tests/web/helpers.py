"""Helpers of the dashboard tests: log in through the form, read CSRF tokens, seed data."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from fastapi.testclient import TestClient

from margindash.reports.periods import add_months

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    """Log in through the login form, as a browser does."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def last_month(today: date | None = None) -> date:
    """The first day of last month (UTC)."""
    return add_months(today or datetime.now(UTC).date(), -1)


def seed_last_month(client: TestClient, ingest: dict[str, str]) -> str:
    """Two customers last month: `acme-profit` earns money, `plexo-loss` loses it. Returns
    the month as `YYYY-MM`."""
    month = last_month()
    at = datetime(month.year, month.month, 10, 12, tzinfo=UTC).isoformat()
    events = [
        {
            "request_id": f"seed-{i}",
            "customer_id": customer,
            "feature": feature,
            "model_name": "gpt-4o",
            "prompt_tokens": prompt,
            "completion_tokens": 1000,
            "timestamp": at,
        }
        for i, (customer, feature, prompt) in enumerate(
            [
                ("acme-profit", "summarize", 200_000),
                ("acme-profit", "chat", 100_000),
                ("plexo-loss", "summarize", 1_000_000),
                ("plexo-loss", "translate", 400_000),
            ]
        )
    ]
    assert client.post("/v1/usage", json={"events": events}, headers=ingest).status_code == 200
    revenue = [
        {"revenue_id": "r1", "customer_id": "acme-profit", "amount": "100.00"},
        {"revenue_id": "r2", "customer_id": "plexo-loss", "amount": "2.00"},
    ]
    key = f"{month:%Y-%m}"
    body = {"revenue": [{**r, "month": key} for r in revenue]}
    assert client.post("/v1/revenue", json=body, headers=ingest).status_code == 200
    return key
