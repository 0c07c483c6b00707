"""Shared fixtures: every database test runs on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, func, select, text

from margindash.app import create_app
from margindash.config import Settings
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.db.tables import metadata
from margindash.orgs.keys import KEY_CACHE, create_api_key
from margindash.orgs.service import NewOrg, create_org
from tests.live_server import LiveServer, server_env

POSTGRES_URL = os.environ.get(
    "MARGINDASH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for this test session, migrated to the latest schema."""
    name = f"margindash_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(_libpq(POSTGRES_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {POSTGRES_URL}: {exc}")
        pytest.skip(
            f"PostgreSQL not reachable at {POSTGRES_URL} (set MARGINDASH_TEST_POSTGRES_URL): "
            "PostgreSQL tests skipped"
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_URL.rpartition("/")
    url = f"{base}/{name}"
    engine = make_engine(url, pool_size=2)
    upgrade(engine)
    engine.dispose()
    yield url
    with psycopg.connect(_libpq(POSTGRES_URL), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating per test is slower)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return path


def _truncate_all(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database: a SQLite file, then PostgreSQL."""
    KEY_CACHE.clear()
    if request.param == "sqlite":
        path = tmp_path / "margindash.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate_all(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated SQLite database only (for tests of SQLite behaviour)."""
    KEY_CACHE.clear()
    path = tmp_path / "margindash.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@dataclass
class Tenant:
    """An org with keys of every scope."""

    created: NewOrg
    read_key: str

    @property
    def org(self):  # type: ignore[no-untyped-def]
        return self.created.org

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.created.admin_key}"}

    @property
    def ingest(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.created.ingest_key}"}

    @property
    def read(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_key}"}


def make_tenant(engine: Engine, name: str, timezone: str = "UTC") -> Tenant:
    created = create_org(engine, name=name, timezone=timezone)
    return Tenant(created, create_api_key(engine, org_id=created.org.id, scope="read"))


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "acme")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def db_state(engine: Engine) -> dict[str, int]:
    """Rows in every table and the rollup sums: compared before and after a rejected request."""
    counts = {}
    reflected = MetaData()
    reflected.reflect(engine)
    with engine.connect() as conn:
        for table in reflected.sorted_tables:
            counts[table.name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
        sums = conn.execute(
            text(
                "SELECT COALESCE(SUM(events), 0), COALESCE(SUM(cost_nanos), 0), "
                "COALESCE(SUM(revenue_nanos), 0) FROM daily_rollups"
            )
        ).one()
    counts.update(rollup_events=sums[0], rollup_cost=sums[1], rollup_revenue=sums[2])
    return counts


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """An empty, migrated PostgreSQL database only (for tests of PostgreSQL behaviour)."""
    KEY_CACHE.clear()
    _truncate_all(postgres_database)
    return postgres_database


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real `margindash serve` processes on `database_url`; all are stopped afterwards.

    Keyword arguments are extra environment variables (`MARGINDASH_RATE_LIMIT_PER_MINUTE="5"`).
    """
    started: list[LiveServer] = []

    def start(database_url: str, *, access_log: bool = False, **env: str) -> LiveServer:
        server = LiveServer(server_env(database_url, **env), tmp_path, access_log=access_log)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
