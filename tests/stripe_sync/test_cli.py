"""`margindash stripe events|replay|unmap|configure` in-process (the subprocess run of backfill,
verify and map is in test_backfill.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from margindash.cli import app
from margindash.config import Settings, get_settings
from margindash.jobs import registry  # noqa: F401  (registers every job)
from margindash.jobs.scheduler import JOBS
from tests.conftest import Tenant
from tests.stripe_sync.helpers import deliver_ok, load, revenue_by


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for name in ("STRIPE_API_KEY", "MARGINDASH_DEFAULT_ORG", "MARGINDASH_STRIPE_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MARGINDASH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_failed_events_are_listed_and_replayed(
    cli: CliRunner, client: TestClient, tenant: Tenant
) -> None:
    deliver_ok(client, load("invoice_paid_plexo"))
    assert deliver_ok(client, load("invoice_paid_jpy"))["status"] == "failed"

    failed = cli.invoke(app, ["stripe", "events", "--status", "failed"])
    assert failed.exit_code == 0, failed.output
    assert "evt_1QKyotoInvoicePaid01" in failed.output and "no FX rate" in failed.output
    assert "evt_1QPlexoInvoicePaid01" not in failed.output

    still = cli.invoke(app, ["stripe", "replay"])
    assert still.exit_code == 1 and "1 failed" in still.output
    assert cli.invoke(app, ["fx", "set", "jpy", "0.0067"]).exit_code == 0
    done = cli.invoke(app, ["stripe", "replay"])
    assert done.exit_code == 0 and "Replayed: 1 processed." in done.output
    everything = cli.invoke(app, ["stripe", "replay", "--all"])
    assert everything.exit_code == 0 and "Replayed: 2 processed." in everything.output
    assert revenue_by(client, tenant, "customer") == {
        "cus_QPlexoHealth01": "307.80",
        "kyoto-labs": "100.50",
        "TOTAL": "408.30",
    }


def test_map_unmap_and_configure(cli: CliRunner, client: TestClient, tenant: Tenant) -> None:
    deliver_ok(client, load("invoice_paid_unmapped"))
    assert cli.invoke(app, ["stripe", "map", "cus_QOrbitLabs0001", "orbit"]).exit_code == 0
    assert revenue_by(client, tenant, "customer") == {"orbit": "124.00", "TOTAL": "124.00"}
    unmapped = cli.invoke(app, ["stripe", "unmap", "cus_QOrbitLabs0001"])
    assert unmapped.exit_code == 0 and "1 entries moved" in unmapped.output
    assert cli.invoke(app, ["stripe", "unmap", "cus_QOrbitLabs0001"]).exit_code == 1
    assert revenue_by(client, tenant, "customer")["cus_QOrbitLabs0001"] == "124.00"

    bad = cli.invoke(app, ["stripe", "configure", "--secret", "not-a-secret"])
    assert bad.exit_code == 2 and "webhook_secrets" in bad.output
    test_mode = cli.invoke(app, ["stripe", "configure", "--mode", "test"])
    assert test_mode.exit_code == 0 and "booked mode:    test (org)" in test_mode.output
    assert revenue_by(client, tenant, "customer") == {"TOTAL": "0.00"}  # live revenue left
    assert cli.invoke(app, ["stripe", "configure", "--mode", "live"]).exit_code == 0
    assert revenue_by(client, tenant, "customer")["TOTAL"] == "124.00"


def test_the_scheduler_knows_the_stripe_jobs() -> None:
    assert {"stripe-retry-events", "stripe-reconcile"} <= {job.name for job in JOBS}
