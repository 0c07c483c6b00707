"""Users, sessions and login throttling on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select

from margindash.db.tables import login_failures, metadata, user_sessions, users
from margindash.users.accounts import (
    UserExists,
    authenticate_user,
    create_user,
    find_user,
    list_users,
    set_password,
)
from margindash.users.login import LoginThrottled, sign_in
from margindash.users.sessions import end_session, load_session, start_session
from tests.conftest import Tenant
from tests.web.helpers import PASSWORD

HOUR = timedelta(hours=1)


def test_passwords_are_argon2_hashes_and_verify(engine: Engine, tenant: Tenant) -> None:
    user = create_user(
        engine, org_id=tenant.org.id, email=" Ana@Example.COM ", password=PASSWORD, role="admin"
    )
    assert user.email == "ana@example.com"
    with engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert authenticate_user(engine, email="ANA@example.com", password=PASSWORD) == find_user(
        engine, email="ana@example.com"
    )
    assert authenticate_user(engine, email="ana@example.com", password=PASSWORD + "x") is None
    assert authenticate_user(engine, email="nobody@example.com", password=PASSWORD) is None
    assert authenticate_user(engine, email="not an e-mail", password=PASSWORD) is None
    assert [u.email for u in list_users(engine, org_id=tenant.org.id)] == ["ana@example.com"]


@pytest.mark.parametrize(
    ("email", "password", "role", "message"),
    [
        ("ana@example.com", "short", "admin", "at least 10 characters"),
        ("ana.example.com", PASSWORD, "admin", "not an e-mail address"),
        ("ana@example.com", PASSWORD, "owner", "unknown role"),
    ],
)
def test_bad_accounts_are_refused_and_not_stored(
    engine: Engine, tenant: Tenant, email: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_user(engine, org_id=tenant.org.id, email=email, password=password, role=role)
    assert list_users(engine, org_id=tenant.org.id) == []


def test_an_email_has_one_account(engine: Engine, tenant: Tenant) -> None:
    create_user(
        engine, org_id=tenant.org.id, email="ana@example.com", password=PASSWORD, role="viewer"
    )
    with pytest.raises(UserExists):
        create_user(
            engine, org_id=tenant.org.id, email="ANA@example.com", password=PASSWORD, role="admin"
        )


def test_sessions_store_only_a_hash_and_end(engine: Engine, tenant: Tenant) -> None:
    user = create_user(
        engine, org_id=tenant.org.id, email="ana@example.com", password=PASSWORD, role="admin"
    )
    token, session = start_session(engine, user=user, lifetime=HOUR)
    with engine.connect() as conn:
        stored = conn.execute(select(user_sessions.c.token_hash)).scalar_one()
    assert token not in stored
    loaded = load_session(engine, token)
    assert loaded is not None and loaded.user.id == user.id
    assert loaded.csrf_token == session.csrf_token
    assert load_session(engine, token + "x") is None
    end_session(engine, token)
    assert load_session(engine, token) is None


def test_expired_sessions_do_not_load(engine: Engine, tenant: Tenant) -> None:
    user = create_user(
        engine, org_id=tenant.org.id, email="ana@example.com", password=PASSWORD, role="admin"
    )
    token, _ = start_session(engine, user=user, lifetime=-HOUR)
    assert load_session(engine, token) is None


def test_a_new_password_ends_every_session(engine: Engine, tenant: Tenant) -> None:
    user = create_user(
        engine, org_id=tenant.org.id, email="ana@example.com", password=PASSWORD, role="admin"
    )
    token, _ = start_session(engine, user=user, lifetime=HOUR)
    assert set_password(engine, email="ana@example.com", password="another long one")
    assert load_session(engine, token) is None
    assert authenticate_user(engine, email="ana@example.com", password=PASSWORD) is None
    assert authenticate_user(engine, email="ana@example.com", password="another long one")
    assert not set_password(engine, email="bob@example.com", password="another long one")


def test_logins_are_throttled_per_email(engine: Engine, tenant: Tenant) -> None:
    create_user(
        engine, org_id=tenant.org.id, email="ana@example.com", password=PASSWORD, role="admin"
    )

    def attempt(password: str, client: str = "10.0.0.1") -> object:
        return sign_in(
            engine,
            email="ana@example.com",
            password=password,
            client=client,
            max_failures=3,
            lifetime=HOUR,
        )

    for _ in range(3):
        assert attempt("wrong password") is None
    with pytest.raises(LoginThrottled) as throttled:
        attempt(PASSWORD, client="10.0.0.2")  # the right password, from elsewhere: still no
    assert 0 < throttled.value.retry_after <= 15 * 60 + 1
    with engine.connect() as conn:
        assert len(conn.execute(select(login_failures)).all()) == 6  # e-mail and client keys


def test_a_successful_login_clears_the_emails_failures(engine: Engine, tenant: Tenant) -> None:
    create_user(
        engine, org_id=tenant.org.id, email="ana@example.com", password=PASSWORD, role="admin"
    )
    for client in ("10.0.0.1", "10.0.0.2"):
        assert (
            sign_in(
                engine,
                email="ana@example.com",
                password="wrong password",
                client=client,
                max_failures=3,
                lifetime=HOUR,
            )
            is None
        )
    signed_in = sign_in(
        engine,
        email="ana@example.com",
        password=PASSWORD,
        client="10.0.0.3",
        max_failures=3,
        lifetime=HOUR,
    )
    assert signed_in is not None
    with engine.connect() as conn:
        keys = {row.throttle_key for row in conn.execute(select(login_failures))}
    assert keys == {"client:10.0.0.1", "client:10.0.0.2"}


def test_the_users_migration_matches_the_tables(engine: Engine) -> None:
    ours = {"users", "user_sessions", "login_failures"}
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if _table_of(d) in ours] == []


def _table_of(change: object) -> str:
    """The table an Alembic autogenerate change is about."""
    item = change[0] if isinstance(change, list) else change
    kind, *rest = item  # type: ignore[misc]
    if kind.endswith("_table"):
        return str(rest[0].name)
    if kind.endswith("_column") or kind.startswith("modify_"):
        return str(rest[1])
    return str(rest[0].table.name)  # an index, a constraint or a foreign key
