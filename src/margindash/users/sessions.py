"""Dashboard sessions: a random token in the cookie, its SHA-256 and a CSRF token in the table."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select

from margindash.db.tables import user_sessions, users
from margindash.users.accounts import User


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user and the CSRF token their forms must carry."""

    user: User
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(engine: Engine, *, user: User, lifetime: timedelta) -> tuple[str, Session]:
    """A new session for `user`: the cookie token (never stored) and the session."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = Session(user=user, csrf_token=secrets.token_urlsafe(32), expires_at=now + lifetime)
    with engine.begin() as conn:
        conn.execute(delete(user_sessions).where(user_sessions.c.expires_at < now))
        conn.execute(
            user_sessions.insert().values(
                token_hash=_digest(token),
                user_id=user.id,
                csrf_token=session.csrf_token,
                created_at=now,
                expires_at=session.expires_at,
            )
        )
    return token, session


def load_session(engine: Engine, token: str) -> Session | None:
    """The live session for a cookie token, or None when unknown or expired."""
    s, u = user_sessions, users
    with engine.connect() as conn:
        row = conn.execute(
            select(u, s.c.csrf_token, s.c.expires_at)
            .join_from(s, u, s.c.user_id == u.c.id)
            .where(s.c.token_hash == _digest(token), s.c.expires_at > datetime.now(UTC))
        ).first()
    if row is None:
        return None
    user = User(row.id, row.org_id, row.email, row.role, row.created_at, row.last_login_at)
    return Session(user=user, csrf_token=row.csrf_token, expires_at=row.expires_at)


def end_session(engine: Engine, token: str) -> None:
    """Forget a session (log out)."""
    with engine.begin() as conn:
        conn.execute(delete(user_sessions).where(user_sessions.c.token_hash == _digest(token)))
