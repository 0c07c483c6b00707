"""A slow SMTP relay delays alert e-mails, never budget evaluation or the guard; every alert is
still e-mailed exactly once, and shutting down with an e-mail in flight does not hang."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from margindash.app import create_app
from margindash.budgets.alerts import NewAlert, deliver_due, list_alerts, record_alert
from margindash.budgets.notifiers import AlertMessage, notifiers_from
from margindash.budgets.outbox import AlertOutbox
from tests.budgets.conftest import SmtpServer, mail_settings, settle, spend_events
from tests.conftest import Tenant

BLOCK_BUDGET = {
    "name": "Images",
    "scope": {"type": "feature", "value": "image_generation"},
    "period": "month",
    "limit_usd": "10.00",
    "thresholds": [50],
    "action": "block",
    "notify": {"emails": ["ops@example.com"]},
}


def outbox_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "alert-outbox" and t.is_alive()]


def test_the_guard_blocks_while_an_alert_e_mail_is_stuck_in_a_slow_relay(
    database_url: str, engine: Engine, tenant: Tenant, smtp_server: SmtpServer
) -> None:
    # The relay answers long after the client sends; the client waits for it (no timeout).
    settings = mail_settings(database_url, smtp_server.port, alert_timeout_seconds=120.0)
    smtp_server.hold()
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/budgets", json=BLOCK_BUDGET, headers=tenant.admin).is_success
        half = {"events": spend_events("6.00", prefix="half")}
        assert client.post("/v1/usage", json=half, headers=tenant.ingest).is_success
        settle(client, deliveries=False)
        assert smtp_server.wait_held(1)  # the 50% e-mail is waiting for the relay

        over = {"events": spend_events("5.00", prefix="over")}
        assert client.post("/v1/usage", json=over, headers=tenant.ingest).is_success
        # Evaluated while the e-mail waits: the budget blocks now, not when the relay answers.
        settle(client, deliveries=False)
        check = client.get("/v1/budgets/check?feature=image_generation", headers=tenant.ingest)
        assert check.json()["allowed"] is False
        blocklist = client.get("/v1/budgets/blocklist", headers=tenant.ingest).json()
        assert [entry["value"] for entry in blocklist["blocked"]] == ["image_generation"]
        assert smtp_server.messages == []
        statuses = [
            a["status"] for a in client.get("/v1/alerts", headers=tenant.read).json()["alerts"]
        ]
        assert statuses == ["pending", "pending"]

        smtp_server.release()
        settle(client)
        alerts = client.get("/v1/alerts", headers=tenant.read).json()["alerts"]
    assert outbox_threads() == []  # stopped with the app

    assert [m.subject for m in smtp_server.wait_for(2)] == [
        "[margindash] Images budget passed 50%: $6.00 of $10.00 (60%)",
        "[margindash] Images budget is now blocking calls: $11.00 of $10.00 (110%)",
    ]
    for alert in alerts:
        assert alert["status"] == "delivered"
        assert [(d["status"], d["attempts"]) for d in alert["deliveries"]] == [("delivered", 1)]
    # Nothing is left for the retry job, however late it runs: one e-mail per alert.
    settings_notifiers = notifiers_from(settings)
    later = datetime.now(UTC) + timedelta(hours=2)
    assert deliver_due(engine, notifiers=settings_notifiers, settings=settings, now=later) == 0
    assert len(smtp_server.wait_for(3, timeout=0.5)) == 2


def test_stopping_with_an_e_mail_in_flight_returns_and_leaves_the_rest_to_the_retry_job(
    database_url: str, engine: Engine, tenant: Tenant, smtp_server: SmtpServer
) -> None:
    settings = mail_settings(database_url, smtp_server.port, alert_timeout_seconds=120.0)
    notifiers = notifiers_from(settings)
    now = datetime.now(UTC)
    recorded = []
    for n in (1, 2):
        message = AlertMessage(kind="test", severity="info", subject=f"alert {n}", body="body\n")
        alert = NewAlert(tenant.org.id, f"test:{n}", message, emails=("ops@example.com",))
        alert_id = record_alert(engine, alert, now=now)
        assert alert_id is not None
        recorded.append(alert_id)
    outbox = AlertOutbox(engine=engine, settings=settings, notifiers=notifiers)
    smtp_server.hold()
    outbox.start()
    outbox.send(recorded, recorded_at=now)
    assert smtp_server.wait_held(1)

    assert outbox.stop(timeout=0.2) is False  # returned, with the first e-mail still in flight
    smtp_server.release()
    deadline = time.monotonic() + 10
    while outbox_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert outbox_threads() == []  # the thread ends once its send returns
    assert outbox.wait_idle(1)
    assert [m.subject for m in smtp_server.wait_for(1)] == ["alert 1"]

    # The second keeps its claim, so the retry job sends it once the claim has run out.
    assert deliver_due(engine, notifiers=notifiers, settings=settings, now=now) == 0
    after_claim = now + timedelta(minutes=3)
    assert deliver_due(engine, notifiers=notifiers, settings=settings, now=after_claim) == 1
    assert deliver_due(engine, notifiers=notifiers, settings=settings, now=after_claim) == 0
    assert [m.subject for m in smtp_server.wait_for(3, timeout=0.5)] == ["alert 1", "alert 2"]
    assert {a.status for a in list_alerts(engine, org_id=tenant.org.id)} == {"delivered"}
