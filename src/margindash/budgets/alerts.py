"""Alerts: each stored once per dedupe key, then delivered per channel with retries and backoff.

Exactly-once rests on the database: `record_alert` inserts with ON CONFLICT DO NOTHING on
(org, dedupe_key), so of several processes that see the same threshold crossed, one gets the
row and delivers it. Its deliveries start claimed by that process for `CLAIM`; if it dies
before delivering, the retry job picks them up once the claim has run out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from margindash.budgets.notifiers import EMAIL, WEBHOOK, AlertMessage, DeliveryFailed, Notifier
from margindash.config import Settings
from margindash.db.engine import upsert
from margindash.db.tables import alert_deliveries, alerts

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED, NO_CHANNEL = "pending", "delivered", "failed", "no_channel"
STATUSES = (PENDING, DELIVERED, FAILED, NO_CHANNEL)
# How long one sender owns a delivery attempt: longer than any SMTP or HTTP timeout.
CLAIM = timedelta(minutes=2)
MAX_BACKOFF = timedelta(hours=1)
_MAX_ERROR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert about to be recorded: its identity for deduplication, message and channels."""

    org_id: str
    dedupe_key: str
    message: AlertMessage
    budget_id: str | None = None
    emails: tuple[str, ...] = ()
    webhook_url: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One channel of an alert and how its delivery went."""

    id: int
    channel: str
    target: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """A fired alert with its deliveries."""

    id: int
    org_id: str
    kind: str
    severity: str
    subject: str
    body: str
    details: dict[str, Any]
    budget_id: str | None
    status: str
    created_at: datetime
    deliveries: list[Delivery]


def fired_keys(engine: Engine, *, org_id: str, keys: Iterable[str]) -> set[str]:
    """Which of these dedupe keys have already fired for the org."""
    wanted = list(keys)
    if not wanted:
        return set()
    with engine.connect() as conn:
        rows = conn.execute(
            select(alerts.c.dedupe_key).where(
                alerts.c.org_id == org_id, alerts.c.dedupe_key.in_(wanted)
            )
        )
        return set(rows.scalars())


def record_alert(engine: Engine, alert: NewAlert, *, now: datetime | None = None) -> int | None:
    """Store the alert and its deliveries; None when its dedupe key has already fired."""
    now = now or datetime.now(UTC)
    channels = _channels(alert)
    message = alert.message
    stmt = (
        upsert(engine, alerts)
        .values(
            org_id=alert.org_id,
            dedupe_key=alert.dedupe_key,
            kind=message.kind,
            severity=message.severity,
            budget_id=alert.budget_id,
            subject=message.subject,
            body=message.body,
            details=orjson.dumps(message.details).decode(),
            status=PENDING if channels else NO_CHANNEL,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["org_id", "dedupe_key"])
        .returning(alerts.c.id)
    )
    with engine.begin() as conn:
        alert_id = conn.execute(stmt).scalar_one_or_none()
        if alert_id is None:
            return None
        if channels:
            conn.execute(
                insert(alert_deliveries),
                [
                    {
                        "alert_id": alert_id,
                        "channel": channel,
                        "target": target,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now + CLAIM,
                    }
                    for channel, target in channels
                ],
            )
    return int(alert_id)


def deliver_alert(
    engine: Engine,
    *,
    alert_id: int,
    notifiers: Mapping[str, Notifier],
    settings: Settings,
    now: datetime | None = None,
    recorded_at: datetime | None = None,
) -> None:
    """First delivery of an alert this process recorded at `recorded_at` (default: `now`),
    which holds the claim `record_alert` took then. `now` is the time of the attempt."""
    recorded_at = recorded_at or now
    with engine.connect() as conn:
        rows = conn.execute(
            select(alert_deliveries).where(
                alert_deliveries.c.alert_id == alert_id, alert_deliveries.c.status == PENDING
            )
        ).all()
    if rows:
        message = _message(engine, alert_id)
        for row in rows:
            # A slow relay can make a delivery wait behind others longer than its claim; the
            # retry job may then have claimed it, and only one of us may send it.
            ours = recorded_at + CLAIM if recorded_at is not None else row.next_attempt_at
            if _renew_claim(engine, row.id, held_until=ours):
                _attempt(engine, _delivery(row), alert_id, message, notifiers, settings, now)


def deliver_due(
    engine: Engine,
    *,
    notifiers: Mapping[str, Notifier],
    settings: Settings,
    now: datetime | None = None,
    limit: int = 200,
) -> int:
    """Retry every delivery whose time has come (also ones a dead process left); the count."""
    now = now or datetime.now(UTC)
    d = alert_deliveries
    with engine.connect() as conn:
        due = conn.execute(
            select(d)
            .where(d.c.status != DELIVERED, d.c.next_attempt_at <= now)
            .order_by(d.c.next_attempt_at)
            .limit(limit)
        ).all()
    attempted = 0
    for row in due:
        if not _claim(engine, row.id, now):
            continue  # another process is on it
        _attempt(
            engine,
            _delivery(row),
            row.alert_id,
            _message(engine, row.alert_id),
            notifiers,
            settings,
            now,
        )
        attempted += 1
    return attempted


def list_alerts(
    engine: Engine,
    *,
    org_id: str,
    limit: int = 50,
    kind: str | None = None,
    status: str | None = None,
    budget_id: str | None = None,
) -> list[StoredAlert]:
    """The org's alerts, newest first, with their deliveries."""
    a = alerts
    query = select(a).where(a.c.org_id == org_id)
    for column, value in ((a.c.kind, kind), (a.c.status, status), (a.c.budget_id, budget_id)):
        if value is not None:
            query = query.where(column == value)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(a.c.id.desc()).limit(limit)).all()
        deliveries = _deliveries_of(conn, [row.id for row in rows])
    return [
        StoredAlert(
            id=row.id,
            org_id=row.org_id,
            kind=row.kind,
            severity=row.severity,
            subject=row.subject,
            body=row.body,
            details=orjson.loads(row.details),
            budget_id=row.budget_id,
            status=row.status,
            created_at=row.created_at,
            deliveries=deliveries.get(row.id, []),
        )
        for row in rows
    ]


def retry_delay(
    attempts: int, *, settings: Settings, retry_after: float | None = None
) -> timedelta:
    """Wait before the next attempt: doubling from the configured base, capped at an hour."""
    backoff = timedelta(seconds=settings.alert_retry_seconds * 2 ** (attempts - 1))
    delay = min(backoff, MAX_BACKOFF)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def _channels(alert: NewAlert) -> list[tuple[str, str]]:
    channels = []
    if alert.emails:
        channels.append((EMAIL, ", ".join(alert.emails)))
    if alert.webhook_url:
        channels.append((WEBHOOK, alert.webhook_url))
    return channels


def _claim(engine: Engine, delivery_id: int, now: datetime) -> bool:
    d = alert_deliveries
    with engine.begin() as conn:
        taken = conn.execute(
            update(d)
            .where(d.c.id == delivery_id, d.c.status != DELIVERED, d.c.next_attempt_at <= now)
            .values(next_attempt_at=now + CLAIM)
        ).rowcount
    return taken == 1


def _renew_claim(engine: Engine, delivery_id: int, *, held_until: datetime) -> bool:
    """Extend this process's claim on a pending delivery just before sending it. False when
    another process has claimed it since: claiming moves `next_attempt_at` off `held_until`."""
    d = alert_deliveries
    with engine.begin() as conn:
        renewed = conn.execute(
            update(d)
            .where(d.c.id == delivery_id, d.c.status == PENDING, d.c.next_attempt_at == held_until)
            .values(next_attempt_at=datetime.now(UTC) + CLAIM)
        ).rowcount
    return renewed == 1


def _attempt(
    engine: Engine,
    delivery: Delivery,
    alert_id: int,
    message: AlertMessage,
    notifiers: Mapping[str, Notifier],
    settings: Settings,
    now: datetime | None,
) -> None:
    values: dict[str, Any] = {"attempts": delivery.attempts + 1}
    try:
        notifier = notifiers.get(delivery.channel)
        if notifier is None:
            raise DeliveryFailed(f"no notifier for channel {delivery.channel!r}", retryable=False)
        notifier.send(message, target=delivery.target)
    except Exception as exc:  # any failure is the delivery's, never the caller's
        failure = exc if isinstance(exc, DeliveryFailed) else DeliveryFailed(repr(exc))
        if not isinstance(exc, DeliveryFailed):
            log.exception("alert %s: %s delivery raised unexpectedly", alert_id, delivery.channel)
        retry = failure.retryable and values["attempts"] < settings.alert_max_attempts
        after = now or datetime.now(UTC)
        delay = retry_delay(values["attempts"], settings=settings, retry_after=failure.retry_after)
        values.update(
            status=FAILED,
            last_error=str(failure)[:_MAX_ERROR_CHARS],
            next_attempt_at=after + delay if retry else None,
        )
        log.warning("alert %s: %s delivery failed: %s", alert_id, delivery.channel, failure)
    else:
        values.update(
            status=DELIVERED,
            last_error=None,
            next_attempt_at=None,
            delivered_at=now or datetime.now(UTC),
        )
    with engine.begin() as conn:
        conn.execute(
            update(alert_deliveries).where(alert_deliveries.c.id == delivery.id).values(values)
        )
        _refresh_status(conn, alert_id)


def _refresh_status(conn: Connection, alert_id: int) -> None:
    statuses = set(
        conn.execute(
            select(alert_deliveries.c.status).where(alert_deliveries.c.alert_id == alert_id)
        ).scalars()
    )
    if not statuses:
        status = NO_CHANNEL
    elif statuses == {DELIVERED}:
        status = DELIVERED
    elif FAILED in statuses:
        status = FAILED
    else:
        status = PENDING
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(status=status))


def _message(engine: Engine, alert_id: int) -> AlertMessage:
    with engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
    return AlertMessage(
        kind=row.kind,
        severity=row.severity,
        subject=row.subject,
        body=row.body,
        details=orjson.loads(row.details),
    )


def _deliveries_of(conn: Connection, alert_ids: list[int]) -> dict[int, list[Delivery]]:
    if not alert_ids:
        return {}
    found: dict[int, list[Delivery]] = {}
    rows = conn.execute(
        select(alert_deliveries)
        .where(alert_deliveries.c.alert_id.in_(alert_ids))
        .order_by(alert_deliveries.c.id)
    )
    for row in rows:
        found.setdefault(row.alert_id, []).append(_delivery(row))
    return found


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        channel=row.channel,
        target=row.target,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
    )
