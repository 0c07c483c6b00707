"""Re-pricing stored events: a dry run writes nothing, a real run changes exactly the events in
range, moves their rollups, and is recorded."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, case, func, select

from margindash.db.tables import (
    customer_months,
    daily_rollups,
    monthly_rollups,
    repricing_runs,
    usage_events,
)
from margindash.ledger.repricing import RepriceScope, list_repricings, reprice_events
from margindash.pricing.overrides import add_override, delete_override
from margindash.pricing.service import Pricer
from tests.conftest import Tenant, db_state

TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
DAYS = [(TODAY - timedelta(days=n)).date() for n in (5, 4, 3, 2, 1)]


def event(n: int, day: date, customer: str, model: str) -> dict[str, Any]:
    return {
        "request_id": f"e{n}",
        "customer_id": customer,
        "model_name": model,
        "prompt_tokens": 1_000_000,
        "completion_tokens": 100_000,
        "timestamp": datetime.combine(day, TODAY.timetz()).isoformat(),
        "revenue_amount_cents": 7,
    }


def load_events(client: TestClient, tenant: Tenant) -> None:
    events = []
    for i, day in enumerate(DAYS):
        events.append(event(3 * i, day, "acme", "gpt-4o"))
        events.append(event(3 * i + 1, day, "globex", "gpt-4o-mini"))
        events.append(event(3 * i + 2, day, "globex", "acme-llama"))  # unpriced at first
    response = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest)
    assert response.json()["accepted"] == 15


def costs(engine: Engine) -> dict[str, int | None]:
    with engine.connect() as conn:
        rows = conn.execute(select(usage_events.c.request_id, usage_events.c.cost_nanos)).all()
    return {r.request_id: r.cost_nanos for r in rows}


def assert_rollups_match_events(engine: Engine) -> None:
    """Rollups equal what the stored events add up to, per day and per month."""
    t = usage_events
    measures = (
        func.count(),
        func.coalesce(func.sum(t.c.cost_nanos), 0),
        func.sum(t.c.prompt_tokens),
        func.sum(t.c.revenue_cents) * 10_000_000,
    )
    unpriced = func.sum(case((t.c.cost_nanos.is_(None), 1), else_=0))
    with engine.connect() as conn:
        events = {
            (r[0], r[1], r[2]): tuple(r[3:])
            for r in conn.execute(
                select(t.c.day, t.c.customer_id, t.c.model, *measures, unpriced).group_by(
                    t.c.day, t.c.customer_id, t.c.model
                )
            )
        }
        for table, period in ((daily_rollups, "day"), (monthly_rollups, "month")):
            r = table
            stored = {
                (row[0], row[1], row[2]): tuple(row[3:])
                for row in conn.execute(
                    select(
                        r.c[period],
                        r.c.customer_id,
                        r.c.model,
                        r.c.events,
                        r.c.cost_nanos,
                        r.c.prompt_tokens,
                        r.c.revenue_nanos,
                        r.c.unpriced_events,
                    ).where(r.c.events != 0)
                )
            }
            drained = conn.execute(
                select(func.count())
                .select_from(r)
                .where(r.c.events == 0, (r.c.cost_nanos != 0) | (r.c.unpriced_events != 0))
            ).scalar_one()
            assert drained == 0
            expected: dict[tuple[Any, ...], list[int]] = {}
            for (day, customer, model), values in events.items():
                key = (day if period == "day" else day.replace(day=1), customer, model)
                total = expected.setdefault(key, [0, 0, 0, 0, 0])
                for i, value in enumerate(values):
                    total[i] += int(value)
            assert stored == {k: tuple(v) for k, v in expected.items()}, period
        # The per-customer month totals that P&L by customer reads.
        c = customer_months
        per_customer = {
            (row[0], row[1]): tuple(row[2:])
            for row in conn.execute(
                select(
                    c.c.month,
                    c.c.customer_id,
                    c.c.events,
                    c.c.cost_nanos,
                    c.c.prompt_tokens,
                    c.c.revenue_nanos,
                    c.c.unpriced_events,
                ).where(c.c.events != 0)
            )
        }
        by_customer: dict[tuple[Any, ...], list[int]] = {}
        for (day, customer, _model), values in events.items():
            total = by_customer.setdefault((day.replace(day=1), customer), [0, 0, 0, 0, 0])
            for i, value in enumerate(values):
                total[i] += int(value)
        assert per_customer == {k: tuple(v) for k, v in by_customer.items()}, "customer_months"


def test_dry_run_writes_nothing_and_shows_each_customer_and_model(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    load_events(client, tenant)
    add_override(engine, org_id=tenant.org.id, model=None, provider="openai", discount_pct="10")
    before = db_state(engine)
    preview = reprice_events(
        Pricer(engine),
        org=tenant.org,
        scope=RepriceScope(date_from=DAYS[1], date_to=DAYS[2]),
        actor="test",
        reason="openai discount",
        dry_run=True,
    )
    assert db_state(engine) == before
    assert (preview.examined, preview.changed, preview.run_id) == (6, 4, None)
    # gpt-4o: 1M in x $2.50 + 100k out x $10 = $3.50, 10% off; gpt-4o-mini $0.21 → $0.189.
    assert preview.lines[("acme", "gpt-4o", "gpt-4o")].cost_before == 2 * 3_500_000_000
    assert preview.lines[("acme", "gpt-4o", "gpt-4o")].cost_after == 2 * 3_150_000_000
    assert preview.lines[("globex", "gpt-4o-mini", "gpt-4o-mini")].cost_after == 2 * 189_000_000
    assert preview.lines[("globex", "acme-llama", "acme-llama")].changed == 0


def test_a_real_run_changes_exactly_the_events_in_range_and_is_recorded(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    load_events(client, tenant)
    add_override(engine, org_id=tenant.org.id, model=None, provider="openai", discount_pct="10")
    add_override(
        engine,
        org_id=tenant.org.id,
        model="acme-llama",
        provider=None,
        input_per_mtok="1",
        output_per_mtok="2",
    )
    before = costs(engine)
    pricer = Pricer(engine)
    scope = RepriceScope(date_from=DAYS[1], date_to=DAYS[2])
    done = reprice_events(
        pricer, org=tenant.org, scope=scope, actor="alice", reason="contract signed"
    )
    after = costs(engine)
    in_range = {f"e{n}" for n in range(3, 9)}
    assert {k for k in after if after[k] != before[k]} == in_range
    assert after["e3"] == 3_150_000_000 and after["e4"] == 189_000_000
    assert after["e5"] == 1_200_000_000  # newly priced: 1M x $1 + 100k x $2
    assert (done.examined, done.changed, done.priced) == (6, 6, 2)
    assert_rollups_match_events(engine)

    runs = list_repricings(engine, org=tenant.org)
    assert len(runs) == 1 and runs[0].id == done.run_id
    run = runs[0]
    assert (run.actor, run.reason, run.scope) == ("alice", "contract signed", "range")
    assert (run.date_from, run.date_to, run.examined_events, run.changed_events) == (
        DAYS[1],
        DAYS[2],
        6,
        6,
    )
    assert run.cost_after_nanos == 2 * (3_150_000_000 + 189_000_000 + 1_200_000_000)
    assert run.by_model["acme-llama"]["changed"] == 2 and run.finished_at is not None

    again = reprice_events(pricer, org=tenant.org, scope=scope, actor="alice", reason="again")
    assert again.changed == 0 and costs(engine) == after


def test_a_model_filter_limits_the_run(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    load_events(client, tenant)
    add_override(engine, org_id=tenant.org.id, model=None, provider="openai", discount_pct="10")
    before = costs(engine)
    reprice_events(
        Pricer(engine),
        org=tenant.org,
        scope=RepriceScope(date_from=DAYS[0], date_to=DAYS[-1], model="gpt-4o"),
        actor="t",
        reason="r",
    )
    after = costs(engine)
    assert {k for k in after if after[k] != before[k]} == {f"e{3 * i}" for i in range(5)}
    assert_rollups_match_events(engine)


def test_priced_events_without_a_price_now_keep_their_cost(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    custom = add_override(
        engine,
        org_id=tenant.org.id,
        model="acme-llama",
        provider=None,
        input_per_mtok="1",
        output_per_mtok="2",
    )
    load_events(client, tenant)
    delete_override(engine, org_id=tenant.org.id, override_id=custom)
    before = costs(engine)
    result = reprice_events(
        Pricer(engine),
        org=tenant.org,
        scope=RepriceScope(date_from=DAYS[0], date_to=DAYS[-1]),
        actor="t",
        reason="r",
    )
    assert result.kept == 5 and result.changed == 0 and costs(engine) == before


def test_reprice_over_the_api(client: TestClient, tenant: Tenant, engine: Engine) -> None:
    load_events(client, tenant)
    client.post(
        "/v1/pricing/overrides",
        json={"provider": "openai", "discount_pct": "10"},
        headers=tenant.admin,
    )
    body = {"from": DAYS[0].isoformat(), "to": DAYS[0].isoformat(), "dry_run": True}
    before = db_state(engine)
    preview = client.post("/v1/pricing/reprice", json=body, headers=tenant.admin)
    assert preview.status_code == 200, preview.text
    assert db_state(engine) == before
    assert preview.json()["changed_events"] == 2 and preview.json()["repricing_id"] is None
    line = next(r for r in preview.json()["lines"] if r["customer_id"] == "acme")
    assert (line["model"], line["cost_before"], line["cost_after"]) == ("gpt-4o", "3.50", "3.15")

    done = client.post(
        "/v1/pricing/reprice",
        json={**body, "dry_run": False, "reason": "discount"},
        headers=tenant.admin,
    ).json()
    assert done["changed_events"] == 2 and done["repricing_id"]
    assert client.get("/v1/usage/e0", headers=tenant.read).json()["cost_usd"] == "3.15"
    listed = client.get("/v1/pricing/repricings", headers=tenant.read).json()["repricings"]
    assert listed[0]["reason"] == "discount" and listed[0]["actor"].startswith("api key ")
    assert listed[0]["cost_after"] == "3.339"


def test_bad_reprice_requests_name_the_field_and_write_nothing(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    before = db_state(engine)
    for body, field in (
        ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),
        ({"to": "2026-03-01"}, "from"),
        ({"from": "2026-03-01", "to": "March"}, "to"),
    ):
        response = client.post("/v1/pricing/reprice", json=body, headers=tenant.admin)
        assert response.status_code == 422, response.text
        assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert (
        client.post(
            "/v1/pricing/reprice",
            json={"from": "2026-03-01", "to": "2026-03-01"},
            headers=tenant.read,
        ).status_code
        == 403
    )
    assert db_state(engine) == before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(repricing_runs)).scalar_one() == 0


def test_an_alias_moves_unpriced_events_to_the_model_it_names(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    load_events(client, tenant)
    client.post(
        "/v1/pricing/aliases",
        json={"alias": "acme-llama", "model": "gpt-4o-mini"},
        headers=tenant.admin,
    ).raise_for_status()
    # Adding the alias re-priced the events it covers.
    (run,) = list_repricings(engine, org=tenant.org)
    assert (run.scope, run.examined_events, run.changed_events) == ("unpriced", 5, 5)
    assert run.by_model["gpt-4o-mini"]["cost_after"] == 5 * 210_000_000
    with engine.connect() as conn:
        models = set(conn.scalars(select(usage_events.c.model)))
    assert models == {"gpt-4o", "gpt-4o-mini"}
    assert_rollups_match_events(engine)


def test_each_event_is_repriced_at_its_own_instant_within_a_day(
    client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    """DeepSeek's off-peak price starts at 16:30 UTC: one day holds two prices, and re-pricing
    must not carry the first event's price over to the second."""
    day = DAYS[0]
    events = [
        {
            "request_id": f"ds-{hour}",
            "customer_id": "acme",
            "model_name": "deepseek-chat",
            "prompt_tokens": 1_000_000,
            "completion_tokens": 100_000,
            "timestamp": datetime.combine(day, time(hour, 0), UTC).isoformat(),
            "revenue_amount_cents": 5,
        }
        for hour in (15, 17)
    ]
    client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).raise_for_status()
    before = costs(engine)
    assert before["ds-15"] != before["ds-17"]  # the off-peak price is lower
    add_override(engine, org_id=tenant.org.id, model=None, provider="deepseek", discount_pct="10")
    reprice_events(
        Pricer(engine),
        org=tenant.org,
        scope=RepriceScope(date_from=day, date_to=day),
        actor="t",
        reason="discount",
    )
    after = costs(engine)
    for request_id in ("ds-15", "ds-17"):
        assert after[request_id] == before[request_id] * 9 // 10  # type: ignore[operator]
    assert_rollups_match_events(engine)
