"""Each monitor fires once on a crafted series and stays quiet on a flat one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Column, Engine, MetaData, String, Table, insert, inspect
from sqlalchemy import delete as sql_delete

from margindash.budgets.alerts import list_alerts
from margindash.budgets.monitor_rules import pricing_sync_failed
from margindash.budgets.monitors import configure_monitor, default_config, run_monitors
from margindash.budgets.notifiers import notifiers_from
from margindash.config import Settings
from margindash.db.types import UTCDateTime
from margindash.orgs.service import Org
from tests.budgets.conftest import SmtpServer, ingest, midnight, spend_events
from tests.conftest import Tenant, db_state, make_tenant


def run(engine: Engine, org: Org, settings: Settings, now: datetime) -> list[dict[str, Any]]:
    """Run the org's monitors at `now`; the details of the alerts that fired."""
    fired = run_monitors(
        engine, org=org, settings=settings, notifiers=notifiers_from(settings), now=now
    )
    alerts = {a.id: a for a in list_alerts(engine, org_id=org.id, limit=500)}
    return [{"kind": alerts[i].kind, **alerts[i].details} for i in fired]


def test_customer_daily_spike_against_the_same_weekday(
    engine: Engine, tenant: Tenant, alert_settings: Settings
) -> None:
    day = midnight(-3)
    series = {
        # customer: (cost a week before, cost on the day)
        "spiky": ("10.00", "12.00"),  # +20%: above 10%
        "flat": ("10.00", "10.50"),  # +5%
        "tiny": ("0.10", "1.00"),  # +900%, but under the $5 minimum volume
        "new": ("0.00", "20.00"),  # no history: nothing to compare with
    }
    for customer, (before, on_day) in series.items():
        week_before = day - timedelta(weeks=1) + timedelta(hours=9)
        if before != "0.00":
            ingest(
                engine,
                tenant.org,
                spend_events(before, prefix=f"{customer}-b", customer_id=customer, at=week_before),
            )
        ingest(
            engine,
            tenant.org,
            spend_events(
                on_day,
                prefix=f"{customer}-d",
                customer_id=customer,
                at=day + timedelta(hours=9),
                feature=f"f-{customer}",
            ),
        )
    quiet_features(engine, tenant.org)
    now = day + timedelta(days=1, hours=12)
    fired = run(engine, tenant.org, alert_settings, now)
    assert [(f["kind"], f["customer_id"], f["increase_pct"]) for f in fired] == [
        ("customer_daily_spike", "spiky", 20.0)
    ]
    assert fired[0]["baseline_usd"] == "10.00" and fired[0]["cost_usd"] == "12.00"
    assert run(engine, tenant.org, alert_settings, now) == []  # deduplicated


def test_feature_growth_day_over_day(
    engine: Engine, tenant: Tenant, alert_settings: Settings
) -> None:
    day = midnight(-2)
    for feature, (before, on_day) in {
        "growing": ("10.00", "11.00"),  # +10%: above 5%
        "steady": ("10.00", "10.20"),  # +2%
        "small": ("1.00", "3.00"),  # under the minimum volume
    }.items():
        ingest(
            engine,
            tenant.org,
            spend_events(
                before, prefix=f"{feature}-b", feature=feature, at=day - timedelta(hours=12)
            ),
        )
        ingest(
            engine,
            tenant.org,
            spend_events(
                on_day, prefix=f"{feature}-d", feature=feature, at=day + timedelta(hours=12)
            ),
        )
    for kind in ("customer_daily_spike", "customer_low_margin"):
        configure_monitor(engine, org_id=tenant.org.id, kind=kind, changes={"enabled": False})
    fired = run(engine, tenant.org, alert_settings, day + timedelta(days=1, hours=1))
    assert [(f["feature"], f["growth_pct"], f["previous_usd"]) for f in fired] == [
        ("growing", 10.0, "10.00")
    ]


def test_pricing_sync_failures_in_24_hours(
    engine: Engine, tenant: Tenant, alert_settings: Settings
) -> None:
    now = datetime.now(UTC)
    config = default_config("pricing_sync_failed")
    existed = inspect(engine).has_table("pricing_sync_runs")
    if not existed:
        # Until the pricing-sync migration exists the monitor must simply find nothing.
        assert pricing_sync_failed(engine, tenant.org, config, now, "http://x") == []
    runs = _sync_runs_table(engine, create=not existed)
    try:
        _add_run(engine, runs, now - timedelta(hours=30), "failed", "too old to count")
        _add_run(engine, runs, now - timedelta(hours=2), "success", None)
        _add_run(engine, runs, now - timedelta(hours=1), "unchanged", None)
        assert run(engine, tenant.org, alert_settings, now) == []  # flat: no failure in 24 h
        _add_run(engine, runs, now - timedelta(minutes=30), "failed", "HTTP 502 from upstream")
        fired = run(engine, tenant.org, alert_settings, now)
        assert [(f["kind"], f["failures"], f["last_error"]) for f in fired] == [
            ("pricing_sync_failed", 1, "HTTP 502 from upstream")
        ]
        _add_run(engine, runs, now - timedelta(minutes=10), "failed", "again")
        assert run(engine, tenant.org, alert_settings, now) == []  # one alert a day
    finally:
        with engine.begin() as conn:
            if existed:
                conn.execute(sql_delete(runs))
            else:
                runs.drop(conn)


def test_events_without_customer_id(
    engine: Engine, tenant: Tenant, alert_settings: Settings
) -> None:
    flat = make_tenant(engine, "attributed").org
    day = midnight(-1)
    ingest(engine, flat, spend_events("1.00", prefix="ok", at=day + timedelta(hours=3)))
    ingest(
        engine,
        tenant.org,
        spend_events("0.30", prefix="anon", customer_id=None, at=day + timedelta(hours=3)),
        strict=False,
    )
    now = day + timedelta(hours=20)
    assert run(engine, flat, alert_settings, now) == []
    fired = run(engine, tenant.org, alert_settings, now)
    assert [(f["kind"], f["events"], f["cost_usd"]) for f in fired] == [
        ("unattributed_events", 1, "0.30")
    ]
    assert run(engine, tenant.org, alert_settings, now) == []


def test_customer_margin_below_threshold_for_the_month_so_far(
    engine: Engine, tenant: Tenant, alert_settings: Settings, smtp_server: SmtpServer
) -> None:
    at = midnight(0) + timedelta(seconds=1)
    for customer, revenue_cents, cost in (
        ("loser", 10_000, "120.00"),  # margin -20%
        ("winner", 10_000, "50.00"),  # margin 50%
        ("small", 100, "2.00"),  # -100%, but under the $10 minimum volume
        ("no-revenue", None, "30.00"),  # no revenue: no margin % to judge
    ):
        events = spend_events(
            cost, prefix=customer, customer_id=customer, at=at, revenue_cents=revenue_cents
        )
        ingest(engine, tenant.org, events)
    configure_monitor(
        engine,
        org_id=tenant.org.id,
        kind="customer_low_margin",
        changes={"notify": {"emails": ["finance@example.com"]}},
    )
    fired = run(engine, tenant.org, alert_settings, datetime.now(UTC))
    assert [(f["kind"], f["customer_id"], f["margin_pct"]) for f in fired] == [
        ("customer_low_margin", "loser", -20.0)
    ]
    [mail] = smtp_server.wait_for(1)
    month = f"{at:%Y-%m}"
    assert mail.subject == f"[margindash] loser margin -20% for {month} so far (below 0%)"
    assert mail.rcpt_tos == ["finance@example.com"]
    assert "revenue $100.00, cost $120.00, margin -$20.00 (-20%)" in mail.text
    assert run(engine, tenant.org, alert_settings, datetime.now(UTC)) == []


def test_a_disabled_monitor_stays_quiet(
    engine: Engine, tenant: Tenant, alert_settings: Settings
) -> None:
    configure_monitor(
        engine, org_id=tenant.org.id, kind="unattributed_events", changes={"enabled": False}
    )
    day = midnight(-1)
    events = spend_events("0.30", prefix="anon", customer_id=None, at=day + timedelta(hours=3))
    ingest(engine, tenant.org, events, strict=False)
    assert run(engine, tenant.org, alert_settings, day + timedelta(hours=20)) == []


@pytest.fixture
def mail_client(alert_settings: Settings) -> Iterator[TestClient]:
    from margindash.app import create_app

    with TestClient(create_app(alert_settings)) as client:
        yield client


def test_monitor_settings_over_http(
    mail_client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    client = mail_client
    listed = client.get("/v1/monitors", headers=tenant.read).json()["monitors"]
    assert [m["kind"] for m in listed] == [
        "customer_daily_spike",
        "feature_daily_growth",
        "pricing_sync_failed",
        "unattributed_events",
        "customer_low_margin",
    ]
    spike = listed[0]
    assert (spike["threshold"], spike["min_volume_usd"], spike["lookback"]) == (10, "5.00", 1)
    changed = client.patch(
        "/v1/monitors/customer_daily_spike",
        json={
            "threshold": 25,
            "min_volume_usd": "1.50",
            "lookback": 4,
            "notify": {"emails": ["ops@example.com"], "webhook_url": None},
        },
        headers=tenant.admin,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["threshold"], changed.json()["min_volume_usd"]) == (25, "1.50")
    again = client.get("/v1/monitors", headers=tenant.read).json()["monitors"][0]
    assert again["notify"]["emails"] == ["ops@example.com"] and again["lookback"] == 4

    before = db_state(engine)
    for kind, body, field in (
        ("customer_daily_spike", {"threshold": "high"}, "threshold"),
        ("customer_daily_spike", {"threshold": -5}, "threshold"),
        ("unattributed_events", {"threshold": 1.5}, "threshold"),
        ("customer_daily_spike", {"min_volume_usd": "-1"}, "min_volume_usd"),
        ("customer_daily_spike", {"lookback": 0}, "lookback"),
        ("customer_daily_spike", {"enabled": "yes"}, "enabled"),
        ("customer_daily_spike", {"notify": {"emails": ["nope"]}}, "notify.emails"),
        ("customer_daily_spike", {"sensitivity": 3}, "sensitivity"),
    ):
        response = client.patch(f"/v1/monitors/{kind}", json=body, headers=tenant.admin)
        assert response.status_code == 422, (body, response.text)
        assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert client.patch("/v1/monitors/weather", json={}, headers=tenant.admin).status_code == 404
    assert (
        client.patch(
            "/v1/monitors/customer_daily_spike", json={"enabled": False}, headers=tenant.read
        ).status_code
        == 403
    )
    assert db_state(engine) == before


def quiet_features(engine: Engine, org: Org) -> None:
    """Switch off the monitors a spike series would also trip, to look at one rule."""
    for kind in ("feature_daily_growth", "customer_low_margin"):
        configure_monitor(engine, org_id=org.id, kind=kind, changes={"enabled": False})


def _sync_runs_table(engine: Engine, *, create: bool) -> Table:
    if not create:
        return Table("pricing_sync_runs", MetaData(), autoload_with=engine)
    runs = Table(
        "pricing_sync_runs",
        MetaData(),
        Column("id", String(40), primary_key=True),
        Column("started_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime),
        Column("status", String(16), nullable=False),
        Column("error", String(1000)),
    )
    runs.create(engine)
    return runs


def _add_run(
    engine: Engine, runs: Table, started_at: datetime, status: str, error: str | None
) -> None:
    """A sync run row, filling any column the real table requires that this test does not know."""
    values: dict[str, Any] = {
        "started_at": started_at,
        "finished_at": started_at,
        "status": status,
        "error": error,
    }
    for column in runs.columns:
        if column.name in values or column.nullable or column.server_default is not None:
            continue
        if column.primary_key and column.autoincrement is not False and _is_integer(column):
            continue
        values[column.name] = _filler(column, started_at)
    with engine.begin() as conn:
        conn.execute(insert(runs).values(values))


def _is_integer(column: Column[Any]) -> bool:
    return column.type.python_type is int if hasattr(column.type, "python_type") else False


def _filler(column: Column[Any], moment: datetime) -> Any:
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return "test"
    if kind is str:
        return "test"
    if kind is int:
        return int(moment.timestamp() * 1000)
    if kind is bool:
        return False
    if kind is datetime:
        return moment
    return None
