"""Dashboard users: one org each, a role (`admin` or `viewer`) and an argon2id password hash."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select, update

from margindash.db.tables import user_sessions, users

ROLES = ("admin", "viewer")
MIN_PASSWORD_LENGTH = 10
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_HASHER = PasswordHasher()
# Verified when the e-mail is unknown, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class User:
    """A dashboard user."""

    id: str
    org_id: str
    email: str
    role: str
    created_at: datetime
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class UserExists(ValueError):
    """A user with that e-mail already exists."""


def normalise_email(email: str) -> str:
    """The stored form of an e-mail address (trimmed, lower case); ValueError if malformed."""
    value = email.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError(f"{email!r} is not an e-mail address")
    return value


def generate_password() -> str:
    """A random password to show once (about 120 bits)."""
    return secrets.token_urlsafe(15)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")


def _user(row: object) -> User:
    return User(
        id=row.id,  # type: ignore[attr-defined]
        org_id=row.org_id,  # type: ignore[attr-defined]
        email=row.email,  # type: ignore[attr-defined]
        role=row.role,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        last_login_at=row.last_login_at,  # type: ignore[attr-defined]
    )


def create_user(engine: Engine, *, org_id: str, email: str, password: str, role: str) -> User:
    """Create a user; UserExists when the e-mail is taken, ValueError on bad input."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    address = normalise_email(email)
    _check_password(password)
    user = User(
        id=f"usr_{secrets.token_hex(8)}",
        org_id=org_id,
        email=address,
        role=role,
        created_at=datetime.now(UTC),
        last_login_at=None,
    )
    with engine.begin() as conn:
        if conn.execute(select(users.c.id).where(users.c.email == address)).first():
            raise UserExists(f"a user with e-mail {address} already exists")
        conn.execute(
            users.insert().values(
                id=user.id,
                org_id=org_id,
                email=address,
                role=role,
                password_hash=_HASHER.hash(password),
                created_at=user.created_at,
            )
        )
    return user


def set_password(engine: Engine, *, email: str, password: str) -> bool:
    """Replace a user's password and end their sessions; False when there is no such user."""
    _check_password(password)
    address = normalise_email(email)
    with engine.begin() as conn:
        user_id = conn.execute(select(users.c.id).where(users.c.email == address)).scalar()
        if user_id is None:
            return False
        conn.execute(
            update(users).where(users.c.id == user_id).values(password_hash=_HASHER.hash(password))
        )
        conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))
    return True


def authenticate_user(engine: Engine, *, email: str, password: str) -> User | None:
    """The user when the e-mail and password match, else None (in about constant time)."""
    try:
        address = normalise_email(email)
    except ValueError:
        address = ""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == address)).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    now = datetime.now(UTC)
    with engine.begin() as conn:
        values: dict[str, object] = {"last_login_at": now}
        if _HASHER.check_needs_rehash(stored):
            values["password_hash"] = _HASHER.hash(password)
        conn.execute(update(users).where(users.c.id == row.id).values(**values))
    return User(row.id, row.org_id, row.email, row.role, row.created_at, now)


def get_user(engine: Engine, user_id: str) -> User | None:
    """A user by id, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return _user(row) if row else None


def list_users(engine: Engine, *, org_id: str) -> list[User]:
    """The org's users, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(users).where(users.c.org_id == org_id).order_by(users.c.created_at)
        ).all()
    return [_user(row) for row in rows]


def find_user(engine: Engine, *, email: str) -> User | None:
    """A user by e-mail, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == normalise_email(email))).first()
    return _user(row) if row else None
