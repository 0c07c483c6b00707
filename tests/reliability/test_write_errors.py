"""Disk and database errors during a write: a non-2xx answer, and nothing half written (no events
without their rollups, no revenue without its spread, or the reverse)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text

from margindash.app import create_app
from margindash.config import Settings
from margindash.db.engine import make_engine
from tests.conftest import db_state, make_tenant
from tests.reliability.ledger import assert_rollups_match_events, stored_request_ids
from tests.test_ingest_api import recent

REVENUE = {"revenue_id": "inv_1", "customer_id": "acct_123", "amount": "9.99", "month": "2026-01"}
# Spread over 700 days: 700 daily rollup rows, more than a full SQLite file has room for.
LONG_REVENUE = {**REVENUE, "month": None, "period_start": "2024-01-01", "period_end": "2025-11-30"}
BATCH = 25


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"]["code"] == "database_unavailable"


def test_sqlite_disk_full_fails_whole_batches_and_keeps_rollups_exact(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    tenant = make_tenant(engine, "acme")
    with engine.connect() as conn:
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()
    app = create_app(Settings(database_url=sqlite_url))

    # The app's connections may grow the file by a few pages only: "database or disk is full".
    def limit_size(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 12}")

    sqlalchemy_event.listen(app.state.services.engine, "connect", limit_size)
    answered: dict[int, int] = {}
    with TestClient(app) as client:
        for batch in range(40):
            events = [
                recent(request_id=f"b{batch}-{i}", customer_id=f"cust-{batch}-{i}")
                for i in range(BATCH)
            ]
            response = client.post("/v1/usage", json={"events": events}, headers=tenant.ingest)
            answered[batch] = response.status_code
            if response.status_code != 200:
                break
        assert_unavailable(response)
        before = db_state(engine)
        assert_unavailable(client.post("/v1/revenue", json=LONG_REVENUE, headers=tenant.ingest))
        assert db_state(engine) == before

    assert list(answered.values()).count(200) >= 1, "the first batch should have fit"
    stored = stored_request_ids(engine, tenant.org.id)
    assert sorted(stored) == sorted(
        f"b{batch}-{i}" for batch, status in answered.items() if status == 200 for i in range(BATCH)
    )
    assert assert_rollups_match_events(engine, tenant.org.id) == len(stored)
    engine.dispose()


@contextmanager
def disk_full_on(database_url: str, table: str) -> Iterator[None]:
    """Make every write to `table` fail as a full disk does (SQLSTATE 53100), until exit."""
    libpq = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION margindash_test_disk_full() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: "
            "No space left on device' USING ERRCODE = 'disk_full'; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER margindash_test_disk_full BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION margindash_test_disk_full()"
        )
        try:
            yield
        finally:
            conn.execute(f"DROP TRIGGER margindash_test_disk_full ON {table}")
            conn.execute("DROP FUNCTION margindash_test_disk_full()")


def test_postgres_disk_full_on_the_last_statement_rolls_back_the_whole_write(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    tenant = make_tenant(engine, "acme")
    batch = {"events": [recent(request_id=f"e{i}") for i in range(5)]}
    with TestClient(create_app(Settings(database_url=postgres_url))) as client:
        client.post("/v1/usage", json=recent(request_id="warm"), headers=tenant.ingest)
        before = db_state(engine)
        # Monthly rollups are written last: events and daily rollups are in by then.
        with disk_full_on(postgres_url, "monthly_rollups"):
            assert_unavailable(client.post("/v1/usage", json=batch, headers=tenant.ingest))
            assert_unavailable(client.post("/v1/revenue", json=REVENUE, headers=tenant.ingest))
            assert db_state(engine) == before
        assert client.post("/v1/usage", json=batch, headers=tenant.ingest).json()["accepted"] == 5
        assert client.post("/v1/revenue", json=REVENUE, headers=tenant.ingest).json()["accepted"]
    assert assert_rollups_match_events(engine, tenant.org.id) == 6
    engine.dispose()


def test_a_broken_schema_is_a_logged_500_not_an_outage(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite calls "no such table" an OperationalError too; it is a bug to fix, not to retry.
    engine = make_engine(sqlite_url)
    tenant = make_tenant(engine, "acme")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE fx_rates"))
    app = create_app(Settings(database_url=sqlite_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/fx-rates", headers=tenant.read)
    assert response.status_code == 500
    assert "retry-after" not in response.headers
    assert "unhandled error on GET /v1/fx-rates" in caplog.text
    engine.dispose()
