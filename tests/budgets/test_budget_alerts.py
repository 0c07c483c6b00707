"""Budget alerts reach a real SMTP server once per (budget, period, threshold), whatever happens."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from margindash.app import create_app
from margindash.budgets.alerts import deliver_due, list_alerts
from margindash.budgets.evaluator import evaluate_budgets, sweep_budgets
from margindash.budgets.notifiers import notifiers_from
from margindash.budgets.service import create_budget, list_budgets, replace_budget
from margindash.budgets.spec import parse_budget
from margindash.config import Settings
from margindash.db.engine import make_engine
from margindash.db.tables import alert_deliveries
from margindash.pricing.service import Pricer
from tests.budgets.conftest import (
    PUBLIC_URL,
    SmtpServer,
    WebhookReceiver,
    free_port,
    ingest,
    mail_settings,
    midnight,
    settle,
    spend_events,
)
from tests.conftest import Tenant
from tests.live_server import LiveServer

BRIEF_BUDGET = {
    "budget": {
        "feature": "image_generation",
        "monthly_limit": 600.00,
        "warning_threshold_percent": 75,
        "critical_threshold_percent": 90,
        "notify_email": ["eng-ops@example.com", "cfo@example.com"],
    }
}


@pytest.fixture
def mail_client(alert_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(alert_settings)) as client:
        yield client


def test_crossing_75_and_90_in_one_batch_sends_both_once(
    mail_client: TestClient,
    tenant: Tenant,
    smtp_server: SmtpServer,
    alert_settings: Settings,
    engine: Engine,
) -> None:
    client = mail_client
    budget = client.post("/v1/budgets", json=BRIEF_BUDGET, headers=tenant.admin).json()
    events = [
        *spend_events("400.00", prefix="big", customer_id="acme-corp"),
        *spend_events("146.00", prefix="small", customer_id="plexo-health"),
        *spend_events("300.00", prefix="chat", customer_id="acme-corp", feature="chat"),
    ]
    response = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest)
    assert response.json()["accepted"] == len(events)
    settle(client)

    received = smtp_server.wait_for(2)
    assert len(received) == 2
    subjects = sorted(m.subject for m in received)
    assert subjects == [
        "[margindash] Image Generation budget passed 75%: $546.00 of $600.00 (91%)",
        "[margindash] Image Generation budget passed 90%: $546.00 of $600.00 (91%)",
    ]
    for mail in received:
        assert mail.rcpt_tos == ["eng-ops@example.com", "cfo@example.com"]
        assert mail.mail_from == "margindash@example.com"
        assert mail.message["To"] == "eng-ops@example.com, cfo@example.com"
        text = mail.text
        assert "Scope:      feature image_generation" in text
        assert "Spent:      $546.00 of $600.00 (91%)" in text
        month = datetime.now(UTC).strftime("%Y-%m")
        assert f"Period:     {month} ({month}-01 to " in text
        assert "Top customers this period:" in text
        assert "acme-corp" in text and "$400.00" in text and "plexo-health" in text
        assert "Top models this period:\n  gpt-4o  " in text
        assert f"{PUBLIC_URL}/budgets" in text
        assert f"{PUBLIC_URL}/customers/acme-corp" in text
    critical = next(m for m in received if "90%" in m.subject)
    assert "threshold (critical)" in critical.text

    # Re-sending the batch (all duplicates) and sweeping again send nothing more.
    again = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest).json()
    assert again["duplicates"] == len(events)
    settle(client)
    notifiers = notifiers_from(alert_settings)
    assert sweep_budgets(engine, settings=alert_settings, notifiers=notifiers) == 0
    assert sweep_budgets(engine, settings=alert_settings, notifiers=notifiers) == 0
    assert len(smtp_server.wait_for(3, timeout=0.5)) == 2

    alerts = client.get("/v1/alerts", headers=tenant.read).json()["alerts"]
    assert [a["details"]["threshold"] for a in alerts] == [90, 75]
    for alert in alerts:
        assert alert["budget_id"] == budget["id"]
        assert alert["status"] == "delivered"
        assert alert["kind"] == "budget_threshold"
        assert alert["details"]["spent_usd"] == "546.00"
        assert alert["deliveries"][0]["status"] == "delivered"
        assert alert["deliveries"][0]["attempts"] == 1
    listed = client.get("/v1/budgets", headers=tenant.read).json()["budgets"][0]
    assert (listed["used_pct"], listed["state"]) == (91.0, "critical")


def test_the_sweep_alerts_on_spend_written_outside_the_api(
    engine: Engine, tenant: Tenant, smtp_server: SmtpServer, alert_settings: Settings
) -> None:
    create_budget(
        engine, org_id=tenant.org.id, spec=parse_budget(BRIEF_BUDGET), pricer=Pricer(engine)
    )
    ingest(engine, tenant.org, spend_events("455.00", prefix="cli"))
    notifiers = notifiers_from(alert_settings)
    assert sweep_budgets(engine, settings=alert_settings, notifiers=notifiers) == 1
    assert sweep_budgets(engine, settings=alert_settings, notifiers=notifiers) == 0
    received = smtp_server.wait_for(1)
    assert [m.subject for m in received] == [
        "[margindash] Image Generation budget passed 75%: $455.00 of $600.00 (75.83%)"
    ]


def test_a_new_period_re_arms_the_thresholds(
    engine: Engine, tenant: Tenant, smtp_server: SmtpServer, alert_settings: Settings
) -> None:
    spec = parse_budget(
        {
            "name": "Daily",
            "scope": {"type": "org"},
            "period": "day",
            "limit_usd": "10",
            "thresholds": [50],
            "notify": {"emails": ["ops@example.com"]},
        }
    )
    create_budget(engine, org_id=tenant.org.id, spec=spec, pricer=Pricer(engine))
    budgets = list_budgets(engine, org_id=tenant.org.id)
    notifiers = notifiers_from(alert_settings)
    yesterday, today = midnight(-1), midnight(0)

    def evaluate(now: datetime) -> int:
        result = evaluate_budgets(
            engine,
            org=tenant.org,
            budgets=budgets,
            settings=alert_settings,
            notifiers=notifiers,
            now=now,
        )
        return len(result.new_alerts)

    ingest(engine, tenant.org, spend_events("6.00", prefix="y", at=yesterday + timedelta(hours=1)))
    assert evaluate(yesterday + timedelta(hours=12)) == 1
    assert evaluate(yesterday + timedelta(hours=23)) == 0
    # Today starts from zero: nothing until today's own spend passes 50% again.
    assert evaluate(today + timedelta(seconds=1)) == 0
    ingest(engine, tenant.org, spend_events("5.00", prefix="t", at=today + timedelta(seconds=1)))
    assert evaluate(datetime.now(UTC)) == 1
    assert evaluate(datetime.now(UTC)) == 0
    received = smtp_server.wait_for(2)
    assert [m.subject for m in received] == [
        "[margindash] Daily budget passed 50%: $6.00 of $10.00 (60%)",
        "[margindash] Daily budget passed 50%: $5.00 of $10.00 (50%)",
    ]
    assert f"Period:     {yesterday.date()}" in received[0].text
    assert f"Period:     {today.date()}" in received[1].text


def test_changing_the_limit_re_arms_but_changing_recipients_does_not(
    engine: Engine, tenant: Tenant, smtp_server: SmtpServer, alert_settings: Settings
) -> None:
    budget = create_budget(
        engine, org_id=tenant.org.id, spec=parse_budget(BRIEF_BUDGET), pricer=Pricer(engine)
    )
    ingest(engine, tenant.org, spend_events("460.00", prefix="s"))
    notifiers = notifiers_from(alert_settings)
    assert sweep_budgets(engine, settings=alert_settings, notifiers=notifiers) == 1
    more_people = {"budget": {**BRIEF_BUDGET["budget"], "notify_email": "all@example.com"}}
    replace_budget(
        engine,
        org_id=tenant.org.id,
        budget_id=budget.id,
        spec=parse_budget(more_people),
        pricer=Pricer(engine),
    )
    assert sweep_budgets(engine, settings=alert_settings, notifiers=notifiers) == 0
    lower = {"budget": {**BRIEF_BUDGET["budget"], "monthly_limit": 500}}
    replace_budget(
        engine,
        org_id=tenant.org.id,
        budget_id=budget.id,
        spec=parse_budget(lower),
        pricer=Pricer(engine),
    )
    assert sweep_budgets(engine, settings=alert_settings, notifiers=notifiers) == 2
    smtp_server.wait_for(3)
    assert [m.subject.split(": ", 1)[1] for m in smtp_server.messages] == [
        "$460.00 of $600.00 (76.67%)",
        "$460.00 of $500.00 (92%)",
        "$460.00 of $500.00 (92%)",
    ]


def test_smtp_down_is_stored_failed_retried_and_delivered_when_it_returns(
    engine: Engine, tenant: Tenant, database_url: str
) -> None:
    server = SmtpServer(port=free_port())  # not started: connections are refused
    settings = mail_settings(database_url, server.port)
    notifiers = notifiers_from(settings)
    create_budget(
        engine, org_id=tenant.org.id, spec=parse_budget(BRIEF_BUDGET), pricer=Pricer(engine)
    )
    ingest(engine, tenant.org, spend_events("460.00", prefix="s"))
    now = datetime.now(UTC)
    assert sweep_budgets(engine, settings=settings, notifiers=notifiers, now=now) == 1
    [alert] = list_alerts(engine, org_id=tenant.org.id)
    assert alert.status == "failed"
    [delivery] = alert.deliveries
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "refused" in (delivery.last_error or "").lower()
    assert delivery.next_attempt_at == now + timedelta(seconds=30)

    # Not due yet: nothing is tried.
    assert deliver_due(engine, notifiers=notifiers, settings=settings, now=now) == 0
    # Due, still down: tried again and pushed back twice as far.
    later = now + timedelta(seconds=31)
    assert deliver_due(engine, notifiers=notifiers, settings=settings, now=later) == 1
    [delivery] = list_alerts(engine, org_id=tenant.org.id)[0].deliveries
    assert (delivery.attempts, delivery.next_attempt_at) == (2, later + timedelta(seconds=60))

    server.start()
    try:
        much_later = later + timedelta(seconds=61)
        assert deliver_due(engine, notifiers=notifiers, settings=settings, now=much_later) == 1
        received = server.wait_for(1)
    finally:
        server.stop()
    assert [m.subject for m in received] == [
        "[margindash] Image Generation budget passed 75%: $460.00 of $600.00 (76.67%)"
    ]
    [alert] = list_alerts(engine, org_id=tenant.org.id)
    assert alert.status == "delivered"
    [delivery] = alert.deliveries
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 3, None)
    assert deliver_due(engine, notifiers=notifiers, settings=settings, now=much_later) == 0


def test_delivery_gives_up_after_the_configured_attempts(
    engine: Engine, tenant: Tenant, database_url: str
) -> None:
    settings = mail_settings(database_url, free_port(), alert_max_attempts=2)
    notifiers = notifiers_from(settings)
    create_budget(
        engine, org_id=tenant.org.id, spec=parse_budget(BRIEF_BUDGET), pricer=Pricer(engine)
    )
    ingest(engine, tenant.org, spend_events("460.00", prefix="s"))
    now = datetime.now(UTC)
    sweep_budgets(engine, settings=settings, notifiers=notifiers, now=now)
    later = now + timedelta(minutes=5)
    assert deliver_due(engine, notifiers=notifiers, settings=settings, now=later) == 1
    [delivery] = list_alerts(engine, org_id=tenant.org.id)[0].deliveries
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 2, None)
    far = now + timedelta(days=2)
    assert deliver_due(engine, notifiers=notifiers, settings=settings, now=far) == 0


def test_a_delivery_left_by_a_dead_process_is_picked_up_after_its_claim(
    engine: Engine, tenant: Tenant, smtp_server: SmtpServer, alert_settings: Settings
) -> None:
    from margindash.budgets.alerts import NewAlert, record_alert
    from margindash.budgets.notifiers import AlertMessage

    now = datetime.now(UTC)
    message = AlertMessage(kind="test", severity="info", subject="left behind", body="body\n")
    alert = NewAlert(tenant.org.id, "test:left", message, emails=("ops@example.com",))
    assert record_alert(engine, alert, now=now) is not None
    assert record_alert(engine, alert, now=now) is None  # the same key never fires twice
    notifiers = notifiers_from(alert_settings)
    assert deliver_due(engine, notifiers=notifiers, settings=alert_settings, now=now) == 0
    after_claim = now + timedelta(minutes=3)
    assert deliver_due(engine, notifiers=notifiers, settings=alert_settings, now=after_claim) == 1
    assert [m.subject for m in smtp_server.wait_for(1)] == ["left behind"]


def test_two_workers_racing_send_one_email(
    database_url: str, tenant: Tenant, smtp_server: SmtpServer, alert_settings: Settings
) -> None:
    setup = make_engine(database_url)
    create_budget(
        setup, org_id=tenant.org.id, spec=parse_budget(BRIEF_BUDGET), pricer=Pricer(setup)
    )
    ingest(setup, tenant.org, spend_events("500.00", prefix="s"))
    setup.dispose()
    workers = 4
    start = threading.Barrier(workers)
    fired: list[int] = []
    failures: list[BaseException] = []

    def worker() -> None:
        engine = make_engine(database_url)  # a process of its own: own engine, own pool
        try:
            notifiers = notifiers_from(alert_settings)
            start.wait()
            fired.append(sweep_budgets(engine, settings=alert_settings, notifiers=notifiers))
        except BaseException as exc:
            failures.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert sum(fired) == 1
    assert len(smtp_server.wait_for(2, timeout=1)) == 1


def test_webhook_gets_slack_compatible_json_and_is_retried_on_5xx(
    engine: Engine, tenant: Tenant, webhook: WebhookReceiver, alert_settings: Settings
) -> None:
    spec = parse_budget(
        {
            "name": "Models",
            "scope": {"type": "model", "value": "gpt-4o"},
            "limit_usd": "100",
            "thresholds": [80],
            "notify": {"webhook_url": webhook.url},
        }
    )
    create_budget(engine, org_id=tenant.org.id, spec=spec, pricer=Pricer(engine))
    ingest(engine, tenant.org, spend_events("85.00", prefix="s"))
    webhook.statuses = [503]
    notifiers = notifiers_from(alert_settings)
    now = datetime.now(UTC)
    assert sweep_budgets(engine, settings=alert_settings, notifiers=notifiers, now=now) == 1
    [alert] = list_alerts(engine, org_id=tenant.org.id)
    assert (alert.status, alert.deliveries[0].last_error) == ("failed", "HTTP 503: ok")
    later = now + timedelta(seconds=31)
    assert deliver_due(engine, notifiers=notifiers, settings=alert_settings, now=later) == 1
    assert list_alerts(engine, org_id=tenant.org.id)[0].status == "delivered"
    assert len(webhook.posts) == 2
    payload: dict[str, Any] = webhook.posts[-1]
    assert payload["text"].startswith("[margindash] Models budget passed 80%: $85.00 of $100.00")
    assert payload["alert"]["kind"] == "budget_threshold"
    assert payload["alert"]["spent_usd"] == "85.00"
    assert payload["alert"]["limit_usd"] == "100.00"
    assert payload["alert"]["scope"] == {"type": "model", "value": "gpt-4o"}


def test_a_webhook_answering_4xx_is_not_retried(
    engine: Engine, tenant: Tenant, webhook: WebhookReceiver, alert_settings: Settings
) -> None:
    spec = parse_budget(
        {
            "name": "Org",
            "scope": {"type": "org"},
            "limit_usd": "10",
            "thresholds": [10],
            "notify": {"webhook_url": webhook.url},
        }
    )
    create_budget(engine, org_id=tenant.org.id, spec=spec, pricer=Pricer(engine))
    ingest(engine, tenant.org, spend_events("2.00", prefix="s"))
    webhook.statuses = [404]
    sweep_budgets(engine, settings=alert_settings, notifiers=notifiers_from(alert_settings))
    with engine.connect() as conn:
        row = conn.execute(select(alert_deliveries)).one()
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 1, None)


def test_a_delivery_the_retry_job_claimed_is_not_sent_again_by_its_evaluation(
    engine: Engine, tenant: Tenant, smtp_server: SmtpServer, alert_settings: Settings
) -> None:
    """An evaluation that records many alerts sends them one by one; behind a slow relay its
    claim on the last ones can run out, and the retry job takes them over. The evaluation must
    then leave them alone: one e-mail per alert."""
    from margindash.budgets.alerts import NewAlert, deliver_alert, record_alert
    from margindash.budgets.notifiers import AlertMessage

    now = datetime.now(UTC)
    message = AlertMessage(kind="test", severity="info", subject="once", body="body\n")
    new = NewAlert(tenant.org.id, "test:once", message, emails=("ops@example.com",))
    alert_id = record_alert(engine, new, now=now)
    assert alert_id is not None
    notifiers = notifiers_from(alert_settings)
    # The evaluation is still busy with earlier alerts when the retry job, minutes on, claims
    # this delivery (as `deliver_due` does: it moves `next_attempt_at`) and starts sending it.
    taken_until = now + timedelta(minutes=5)
    with engine.begin() as conn:
        conn.execute(update(alert_deliveries).values(next_attempt_at=taken_until))
    deliver_alert(engine, alert_id=alert_id, notifiers=notifiers, settings=alert_settings, now=now)
    time.sleep(0.5)  # an e-mail would have arrived by now
    assert smtp_server.messages == []
    later = taken_until + timedelta(seconds=1)  # the retry job's own send, had it died
    assert deliver_due(engine, notifiers=notifiers, settings=alert_settings, now=later) == 1
    assert [m.subject for m in smtp_server.wait_for(1)] == ["once"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_a_public_url_links_point_at_the_served_port(
    database_url: str,
    tenant: Tenant,
    smtp_server: SmtpServer,
    start_server: Callable[..., LiveServer],
) -> None:
    """`margindash serve --port P` and no MARGINDASH_PUBLIC_URL: the links in its e-mails lead
    to port P, not to the default 8000 nothing listens on."""
    server = start_server(
        database_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_server.port),
        SMTP_STARTTLS="false",
        ALERT_FROM="margindash@example.com",
    )
    assert server.port != 8000
    budget = {**BRIEF_BUDGET["budget"], "monthly_limit": 1.00, "notify_email": ["ops@example.com"]}
    created = httpx.post(f"{server.url}/v1/budgets", json={"budget": budget}, headers=tenant.admin)
    assert created.status_code == 201, created.text
    events = spend_events("0.80", prefix="over", customer_id="acme-corp")
    sent = httpx.post(f"{server.url}/v1/usage", json={"events": events}, headers=tenant.ingest)
    assert sent.json()["accepted"] == len(events)
    (mail,) = smtp_server.wait_for(1)
    assert f"http://127.0.0.1:{server.port}/budgets" in mail.text
    assert f"http://127.0.0.1:{server.port}/customers/acme-corp" in mail.text
    assert "MARGINDASH_PUBLIC_URL is not set" not in server.log()  # loopback: nothing to warn of
