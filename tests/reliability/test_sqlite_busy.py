"""SQLite busy: another connection holds the write lock. Writes wait and retry; past the retry
budget they answer 503 with Retry-After, never a 500, and nothing is half written."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from margindash.app import create_app
from margindash.config import Settings
from margindash.db.engine import make_engine
from tests.conftest import db_state, make_tenant
from tests.reliability.ledger import assert_rollups_match_events
from tests.test_ingest_api import recent


@contextmanager
def write_lock(database_url: str, seconds: float) -> Iterator[None]:
    """Hold SQLite's write lock (`BEGIN IMMEDIATE`) from another connection for `seconds`."""
    path = make_url(database_url).database
    assert path
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(seconds, holder.execute, ["ROLLBACK"])
    release.start()
    try:
        yield
    finally:
        release.join()
        holder.close()


def _client(sqlite_url: str) -> TestClient:
    return TestClient(create_app(Settings(database_url=sqlite_url)))


def test_write_waits_for_a_lock_held_a_few_seconds(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    tenant = make_tenant(engine, "acme")
    with _client(sqlite_url) as client:
        assert client.post("/v1/usage", json=recent(request_id="warm"), headers=tenant.ingest)
        started = time.monotonic()
        with write_lock(sqlite_url, 1.5):
            response = client.post("/v1/usage", json=recent(), headers=tenant.ingest)
        assert response.status_code == 200, response.text
        assert time.monotonic() - started >= 1.4  # it really waited for the lock
        assert response.json()["accepted"] == 1
    assert assert_rollups_match_events(engine, tenant.org.id) == 2
    engine.dispose()


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 100 ms busy timeout, so the retry budget (5 tries) runs out in about a second."""
    monkeypatch.setattr("margindash.db.engine.SQLITE_BUSY_TIMEOUT_MS", 100)


def test_busy_errors_are_retried(sqlite_url: str, short_busy_timeout: None) -> None:
    engine = make_engine(sqlite_url)
    tenant = make_tenant(engine, "acme")
    with _client(sqlite_url) as client:
        client.post("/v1/usage", json=recent(request_id="warm"), headers=tenant.ingest)
        with write_lock(sqlite_url, 0.5):  # longer than one busy timeout, shorter than all
            response = client.post("/v1/usage", json=recent(), headers=tenant.ingest)
        assert response.status_code == 200, response.text
        revenue = {
            "revenue_id": "inv_1",
            "customer_id": "acct_123",
            "amount": "5",
            "month": "2026-01",
        }
        with write_lock(sqlite_url, 0.5):
            response = client.post("/v1/revenue", json=revenue, headers=tenant.ingest)
        assert response.status_code == 200, response.text
    assert assert_rollups_match_events(engine, tenant.org.id) == 2
    engine.dispose()


def test_lock_outlasting_the_retries_is_503_and_writes_nothing(
    sqlite_url: str, short_busy_timeout: None
) -> None:
    engine = make_engine(sqlite_url)
    tenant = make_tenant(engine, "acme")
    revenue = {"revenue_id": "inv_1", "customer_id": "acct_123", "amount": "5", "month": "2026-01"}
    with _client(sqlite_url) as client:
        client.post("/v1/usage", json=recent(request_id="warm"), headers=tenant.ingest)
        before = db_state(engine)
        with write_lock(sqlite_url, 4.0):
            responses = [
                client.post("/v1/usage", json=recent(), headers=tenant.ingest),
                client.post("/v1/revenue", json=revenue, headers=tenant.ingest),
            ]
        for response in responses:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"].isdigit()
            assert response.json()["error"]["code"] == "database_unavailable"
        assert db_state(engine) == before
        # Once the lock is gone the same requests go through, each stored once.
        assert client.post("/v1/usage", json=recent(), headers=tenant.ingest).json()["accepted"]
        assert client.post("/v1/revenue", json=revenue, headers=tenant.ingest).json()["accepted"]
    assert assert_rollups_match_events(engine, tenant.org.id) == 2
    engine.dispose()
