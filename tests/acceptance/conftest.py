"""A real deployment shared by the acceptance tests: `margindash init` + `serve` on SQLite or
PostgreSQL, with a real SMTP server (aiosmtpd) for the budget e-mails. verify and reconcile talk
to it over loopback HTTP or read its database, as a user's would; each verify run has a customer
of its own, and reconcile's data has ids of its own, so the tests do not see each other's."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.budgets.conftest import SmtpServer
from tests.conftest import _truncate_all
from tests.live_server import LiveServer, server_env
from tests.test_cli_e2e import MARGINDASH


@dataclass
class Deployment:
    """One running server, its database, keys and the SMTP server its alerts go to."""

    server: LiveServer
    database_url: str
    keys: dict[str, str]
    smtp: SmtpServer
    env: dict[str, str]
    workdir: Path

    @property
    def url(self) -> str:
        """The `/v1` base URL."""
        return f"{self.server.url}/v1"

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['api_key']}"}

    @property
    def ingest(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys['ingest_key']}"}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `margindash ARGS` against this deployment's database."""
        return subprocess.run(
            [MARGINDASH, *args],
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=self.admin, timeout=30)

    def budgets_api(self) -> bool:
        """Whether this server has the budgets API (verify reports it "not available" if not)."""
        return self.get("/budgets").status_code != 404


def deploy(database_url: str, workdir: Path, smtp: SmtpServer) -> Deployment:
    env = server_env(
        database_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        SMTP_STARTTLS="false",
        ALERT_FROM="margindash@example.com",
        COLUMNS="200",
    )
    created = subprocess.run(
        [MARGINDASH, "init", "--org", "acme", "--json"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    server = LiveServer(env, workdir)
    server.start()
    return Deployment(server, database_url, json.loads(created.stdout), smtp, env, workdir)


@pytest.fixture(scope="package")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def sqlite_deployment(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, smtp: SmtpServer
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("acceptance-sqlite")
    shutil.copy(sqlite_template, workdir / "margindash.db")
    deployment = deploy(f"sqlite:///{workdir / 'margindash.db'}", workdir, smtp)
    yield deployment
    deployment.server.stop()


@pytest.fixture(scope="package")
def postgresql_deployment(
    tmp_path_factory: pytest.TempPathFactory, postgres_database: str, smtp: SmtpServer
) -> Iterator[Deployment]:
    _truncate_all(postgres_database)
    deployment = deploy(postgres_database, tmp_path_factory.mktemp("acceptance-pg"), smtp)
    yield deployment
    deployment.server.stop()


def deployment_on(request: pytest.FixtureRequest, backend: str) -> Deployment:
    """The deployment on `sqlite` or `postgresql` (started on first use)."""
    deployment: Deployment = request.getfixturevalue(f"{backend}_deployment")
    return deployment
