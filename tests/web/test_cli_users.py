"""`margindash init --admin-email/--password`, a generated first password, `margindash users`."""

from __future__ import annotations

import json
import os
import re

import pytest
from sqlalchemy import Engine

from margindash.db.engine import make_engine
from margindash.users.accounts import authenticate_user, find_user
from tests.test_cli_e2e import run_cli

_PASSWORD = re.compile(r"Password:\s+(\S+)")


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("MARGINDASH_")}
    values.update(MARGINDASH_DATABASE_URL=sqlite_url, COLUMNS="200")
    return values


@pytest.fixture
def engine(sqlite_url: str) -> Engine:
    return make_engine(sqlite_url)


def test_init_creates_the_first_admin(env: dict[str, str], engine: Engine) -> None:
    result = run_cli(
        env,
        "init",
        "--org",
        "acme",
        "--admin-email",
        "Ana@Example.com",
        "--password",
        "s3cret-pass",
    )
    assert result.returncode == 0, result.stderr
    assert "log in as ana@example.com, admin" in result.stdout
    assert "Password:" not in result.stdout  # chosen by the caller, never echoed
    user = authenticate_user(engine, email="ana@example.com", password="s3cret-pass")
    assert user is not None and user.role == "admin"


def test_init_without_a_password_prints_one_once(env: dict[str, str], engine: Engine) -> None:
    result = run_cli(env, "init", "--org", "acme")
    assert result.returncode == 0, result.stderr
    password = _PASSWORD.search(result.stdout)
    assert password and "admin@localhost" in result.stdout
    assert authenticate_user(engine, email="admin@localhost", password=password.group(1))
    second = run_cli(env, "init", "--org", "other")  # admin@localhost is taken: nothing created
    assert second.returncode == 2 and "already exists" in second.stderr
    assert run_cli(env, "users", "list", "--org", "other").returncode == 1


def test_init_json_keeps_stdout_to_the_documented_keys(env: dict[str, str], engine: Engine) -> None:
    result = run_cli(env, "init", "--org", "acme", "--json", "--admin-email", "ops@example.com")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"org_id", "api_key", "ingest_key"}
    password = _PASSWORD.search(result.stderr)
    assert password
    assert authenticate_user(engine, email="ops@example.com", password=password.group(1))


def test_init_refuses_a_short_password_before_creating_anything(env: dict[str, str]) -> None:
    result = run_cli(env, "init", "--org", "acme", "--password", "short")
    assert result.returncode == 2 and "at least 10 characters" in result.stderr
    again = run_cli(env, "init", "--org", "acme", "--password", "long enough now")
    assert again.returncode == 0, again.stderr


def test_users_add_list_and_set_password(env: dict[str, str], engine: Engine) -> None:
    assert run_cli(env, "init", "--org", "acme", "--password", "first admin pw").returncode == 0
    added = run_cli(env, "users", "add", "--email", "cfo@example.com")
    assert added.returncode == 0, added.stderr
    assert "cfo@example.com, viewer" in added.stdout
    password = _PASSWORD.search(added.stdout)
    assert password
    assert authenticate_user(engine, email="cfo@example.com", password=password.group(1))
    listed = run_cli(env, "users", "list")
    assert "cfo@example.com" in listed.stdout and "viewer" in listed.stdout

    duplicate = run_cli(env, "users", "add", "--email", "CFO@example.com", "--role", "admin")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    bad_role = run_cli(env, "users", "add", "--email", "x@example.com", "--role", "owner")
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr
    assert find_user(engine, email="x@example.com") is None

    changed = run_cli(
        env, "users", "set-password", "--email", "cfo@example.com", "--password", "brand new pw"
    )
    assert changed.returncode == 0, changed.stderr
    assert authenticate_user(engine, email="cfo@example.com", password="brand new pw")
    unknown = run_cli(env, "users", "set-password", "--email", "nobody@example.com")
    assert unknown.returncode == 1
