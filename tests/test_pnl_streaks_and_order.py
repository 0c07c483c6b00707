"""P&L by customer: negative-month streaks whatever the shape of the range, and row order."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.test_pnl_and_revenue import gpt4o_output_events, post_all, revenue

# Customer: {month: (cost cents, revenue cents)}; 2026-01 is missing for "gap".
HISTORY = {
    "steady-loser": {"2025-12": (300, 100), "2026-01": (300, 100), "2026-02": (300, 100)},
    "gap": {"2025-12": (300, 100), "2026-02": (300, 100)},
    "recovered": {"2026-01": (300, 100), "2026-02": (100, 300)},
    "new-loser": {"2026-01": (100, 300), "2026-02": (300, 100)},
    "earner": {"2025-12": (100, 300), "2026-01": (100, 300), "2026-02": (100, 300)},
}
STREAKS = {"steady-loser": 3, "gap": 1, "recovered": 0, "new-loser": 1, "earner": 0}


def load_history(client: TestClient, tenant: Tenant) -> None:
    entries = []
    for customer, months in HISTORY.items():
        for month, (cost_cents, revenue_cents) in months.items():
            events = [
                {**event, "timestamp": f"{month}-14T15:04:05Z"}
                for event in gpt4o_output_events(customer, cost_cents, f"{customer}-{month}")
            ]
            post_all(client, tenant, events)
            entries.append(
                {
                    "revenue_id": f"inv-{customer}-{month}",
                    "customer_id": customer,
                    "amount_cents": revenue_cents,
                    "month": month,
                }
            )
    assert revenue(client, tenant, entries)["accepted"] == len(entries)


def streaks(client: TestClient, tenant: Tenant, query: str) -> dict[str, int]:
    response = client.get(f"/v1/pnl?group_by=customer&{query}", headers=tenant.read)
    assert response.status_code == 200, response.text
    return {row["key"]: row["negative_months"] for row in response.json()["rows"]}


def test_negative_months_are_the_same_for_a_whole_month_and_any_other_range(
    client: TestClient, tenant: Tenant
) -> None:
    load_history(client, tenant)
    # A report of exactly February reads February's margins from its own lines; the others
    # read them from the rollups. Either way the streak counts calendar months.
    assert streaks(client, tenant, "month=2026-02") == STREAKS
    assert streaks(client, tenant, "from=2026-02-01&to=2026-02-28") == STREAKS
    assert streaks(client, tenant, "from=2026-02-10&to=2026-02-28") == STREAKS
    assert streaks(client, tenant, "from=2026-01-01&to=2026-02-28") == STREAKS
    assert streaks(client, tenant, "month=2026-02&customer_id=gap") == {"gap": 1}
    # Revenue has no feature: within one, every month with a cost is a loss.
    by_feature = {"steady-loser": 3, "gap": 1, "recovered": 2, "new-loser": 2, "earner": 3}
    assert streaks(client, tenant, "month=2026-02&feature=summarize") == by_feature
    assert streaks(client, tenant, "from=2026-02-10&to=2026-02-28&feature=summarize") == by_feature
    # In January, "gap" has no line and "new-loser" made money.
    assert streaks(client, tenant, "month=2026-01") == {
        "steady-loser": 2,
        "recovered": 1,
        "new-loser": 0,
        "earner": 0,
    }
    assert streaks(client, tenant, "month=2025-11") == {}
    # Up to 10 February nobody has a February cost yet (calls are on the 14th): what happens
    # after `to` does not count, so no February is negative and no streak reaches `to`.
    not_yet = dict.fromkeys(HISTORY, 0)
    assert streaks(client, tenant, "from=2026-02-01&to=2026-02-10") == not_yet
    assert streaks(client, tenant, "from=2026-01-20&to=2026-02-10") == not_yet


def row_keys(client: TestClient, tenant: Tenant, query: str) -> list[str]:
    response = client.get(f"/v1/pnl?month=2026-02&{query}", headers=tenant.read)
    assert response.status_code == 200, response.text
    return [row["key"] for row in response.json()["rows"]]


def test_rows_are_ordered_by_amount_then_by_key(client: TestClient, tenant: Tenant) -> None:
    events: list[dict[str, Any]] = []
    # Three customers lose exactly $1.00 and one loses $2.00; features cost $1.00 or $2.00.
    for customer, feature, cents in (
        ("cust-b", "search", 100),
        ("cust-c", "chat", 100),
        ("cust-a", "summarize", 100),
        ("cust-d", "chat", 200),
    ):
        events += [
            {**event, "feature": feature}
            for event in gpt4o_output_events(customer, cents, f"{customer}-{feature}")
        ]
    post_all(client, tenant, events)
    assert row_keys(client, tenant, "group_by=customer") == ["cust-d", "cust-a", "cust-b", "cust-c"]
    assert row_keys(client, tenant, "group_by=feature") == ["chat", "search", "summarize"]
    assert row_keys(client, tenant, "group_by=day") == ["2026-02-14"]
