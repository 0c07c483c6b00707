"""Login throttling: failed attempts per e-mail and per client address over a sliding window.

Kept in the database, so every API process behind a load balancer counts the same failures.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select

from margindash.db.tables import login_failures

WINDOW = timedelta(minutes=15)


def throttle_keys(*, email: str, client: str) -> list[str]:
    """What a login attempt counts against: the e-mail and the client's address."""
    return [f"email:{email.strip().lower()[:320]}", f"client:{client[:64]}"]


def retry_after(engine: Engine, *, keys: list[str], max_failures: int) -> int | None:
    """Seconds until another attempt is allowed, or None when not throttled."""
    now = datetime.now(UTC)
    f = login_failures
    with engine.connect() as conn:
        rows = conn.execute(
            select(f.c.throttle_key, func.count(), func.min(f.c.failed_at))
            .where(f.c.throttle_key.in_(keys), f.c.failed_at > now - WINDOW)
            .group_by(f.c.throttle_key)
        ).all()
    waits = [
        # The window slides: the oldest counted failure leaves it first.
        int((_utc(oldest) + WINDOW - now).total_seconds()) + 1
        for _key, count, oldest in rows
        if count >= max_failures
    ]
    return max(waits) if waits else None


def record_failure(engine: Engine, *, keys: list[str]) -> None:
    """Count a failed attempt against each key (and drop failures older than the window)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(delete(login_failures).where(login_failures.c.failed_at < now - WINDOW))
        conn.execute(
            login_failures.insert(), [{"throttle_key": key, "failed_at": now} for key in keys]
        )


def clear_failures(engine: Engine, *, keys: list[str]) -> None:
    """Forget the failures of an e-mail after a successful login."""
    with engine.begin() as conn:
        conn.execute(delete(login_failures).where(login_failures.c.throttle_key.in_(keys)))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
