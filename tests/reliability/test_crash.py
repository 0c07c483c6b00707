"""kill -9 the server mid-ingest: every acknowledged event survives, none is counted twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine

from tests.conftest import Tenant
from tests.live_server import LiveServer
from tests.reliability.clients import RetryingSender, join_senders, run_senders
from tests.reliability.ledger import assert_rollups_match_events, stored_request_ids

CLIENTS = 3
EVENTS_PER_CLIENT = 60
KILL_AFTER_ACKS = 60


def test_kill_9_mid_ingest_loses_no_acknowledged_event_and_counts_none_twice(
    database_url: str,
    engine: Engine,
    tenant: Tenant,
    start_server: Callable[..., LiveServer],
) -> None:
    server = start_server(database_url)
    deadline = time.monotonic() + 60
    senders = [
        RetryingSender(
            server.url,
            tenant.ingest,
            [f"crash-{c}-{i}" for i in range(EVENTS_PER_CLIENT)],
            deadline=deadline,
        )
        for c in range(CLIENTS)
    ]
    run_senders(senders)
    while sum(len(s.acked_now()) for s in senders) < KILL_AFTER_ACKS:
        assert time.monotonic() < deadline, "clients made no progress before the kill"
        assert [u for s in senders for u in s.unexpected] == []
        time.sleep(0.01)
    server.kill()

    # Every event answered 2xx before the process died is on disk, before anyone retries.
    acked_before_kill = {rid for s in senders for rid in s.acked_now()}
    assert len(acked_before_kill) >= KILL_AFTER_ACKS
    assert acked_before_kill <= set(stored_request_ids(engine, tenant.org.id))

    server.start()  # same port: the clients' retries reach the new process
    join_senders(senders)

    sent = [rid for s in senders for rid in s.request_ids]
    assert [u for s in senders for u in s.unexpected] == []
    assert sum(len(s.acked) for s in senders) == len(sent), "some events were never acknowledged"
    assert sum(sum(s.failures.values()) for s in senders) > 0, "the kill interrupted no request"
    stored = stored_request_ids(engine, tenant.org.id)
    assert sorted(stored) == sorted(sent)  # each exactly once
    # A `duplicate` answer is only right for an event whose earlier attempt was stored unanswered.
    for s in senders:
        for rid, status in s.acked.items():
            assert status == "accepted" or (status == "duplicate" and s.failures[rid] > 0), rid
    assert assert_rollups_match_events(engine, tenant.org.id) == len(sent)
    today = datetime.now(UTC).date()
    period = {"from": str(today - timedelta(days=1)), "to": str(today)}
    pnl = httpx.get(f"{server.url}/v1/pnl", params=period, headers=tenant.read).json()
    assert pnl["totals"]["events"] == len(sent)
    assert server.server_errors() == []
