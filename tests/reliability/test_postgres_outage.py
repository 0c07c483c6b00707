"""PostgreSQL unreachable or restarted during ingest: 503 with Retry-After, never a 500, and the
service recovers by itself. The server reaches PostgreSQL through a TCP proxy the test cuts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from margindash.db.engine import POSTGRES_CONNECT_TIMEOUT_S, make_engine
from margindash.ledger.writer import KEEP_IDLE_CONNECTION_S
from tests.conftest import POSTGRES_URL, make_tenant
from tests.live_server import LiveServer
from tests.reliability.clients import RetryingSender, join_senders, run_senders
from tests.reliability.ledger import assert_rollups_match_events, stored_request_ids
from tests.reliability.tcp_proxy import TcpProxy
from tests.test_cli_e2e import event


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    target = make_url(POSTGRES_URL)
    forwarder = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    forwarder.start()
    yield forwarder
    forwarder.close()


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(port=proxy.port).render_as_string(hide_password=False)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()


def terminate_sessions(postgres_url: str) -> None:
    """What a restart does to every session, idle in the pool or busy in a transaction."""
    with psycopg.connect(
        make_url(postgres_url)
        .render_as_string(hide_password=False)
        .replace("postgresql+psycopg://", "postgresql://"),
        autocommit=True,
    ) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_a_restart_while_ingest_is_idle_costs_no_request_an_error(
    postgres_url: str, pg_engine: Engine, start_server: Callable[..., LiveServer]
) -> None:
    tenant = make_tenant(pg_engine, "acme")
    server = start_server(postgres_url)
    with httpx.Client(base_url=server.url, timeout=10) as client:

        def post(request_id: str) -> httpx.Response:
            return client.post("/v1/usage", json=event(request_id), headers=tenant.ingest)

        for round_ in range(3):
            assert [post(f"r{round_}-{i}").status_code for i in range(3)] == [200] * 3
            terminate_sessions(postgres_url)  # the writer's own connection among them
            # Idle longer than the writer keeps its connection: the next commit takes a
            # pinged one from the pool instead of failing on the dead one.
            time.sleep(KEEP_IDLE_CONNECTION_S + 0.5)
    assert len(stored_request_ids(pg_engine, tenant.org.id)) == 9
    assert server.server_errors() == []


def test_unreachable_postgres_answers_503_then_recovers_without_a_restart(
    postgres_url: str,
    pg_engine: Engine,
    proxy: TcpProxy,
    start_server: Callable[..., LiveServer],
) -> None:
    tenant = make_tenant(pg_engine, "acme")
    server = start_server(through(proxy, postgres_url))
    with httpx.Client(base_url=server.url, timeout=10) as client:

        def post(request_id: str) -> httpx.Response:
            return client.post("/v1/usage", json=event(request_id), headers=tenant.ingest)

        assert [post(f"before-{i}").status_code for i in range(5)] == [200] * 5
        proxy.cut()
        for i in range(10):
            response = post(f"during-{i}")
            assert_unavailable(response)
            assert response.json()["error"]["code"] == "database_unavailable"
        assert_unavailable(client.get("/v1/pnl", headers=tenant.read))
        assert_unavailable(client.get("/v1/usage/before-0", headers=tenant.read))
        assert_unavailable(client.get("/healthz"))
        # A silent network: connection attempts time out (POSTGRES_CONNECT_TIMEOUT_S), no hang.
        proxy.blackhole()
        started = time.monotonic()
        assert_unavailable(post("during-0"))
        assert time.monotonic() - started < 4 * POSTGRES_CONNECT_TIMEOUT_S

        proxy.restore()
        deadline = time.monotonic() + 20
        while (response := post("during-0")).status_code != 200:
            assert_unavailable(response)
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.1)
        statuses = [post(f"during-{i}").json()["results"][0]["status"] for i in range(10)]
        assert statuses == ["duplicate"] + ["accepted"] * 9
        assert client.get("/healthz").status_code == 200

    assert sorted(stored_request_ids(pg_engine, tenant.org.id)) == sorted(
        [f"before-{i}" for i in range(5)] + [f"during-{i}" for i in range(10)]
    )
    assert assert_rollups_match_events(pg_engine, tenant.org.id) == 15
    assert server.server_errors() == []


def test_postgres_restart_mid_ingest_costs_retries_never_events(
    postgres_url: str,
    pg_engine: Engine,
    proxy: TcpProxy,
    start_server: Callable[..., LiveServer],
) -> None:
    tenant = make_tenant(pg_engine, "acme")
    server = start_server(through(proxy, postgres_url))
    deadline = time.monotonic() + 60
    senders = [
        RetryingSender(
            server.url, tenant.ingest, [f"restart-{c}-{i}" for i in range(60)], deadline=deadline
        )
        for c in range(3)
    ]

    def wait_for_acks(count: int) -> None:
        while sum(len(s.acked_now()) for s in senders) < count:
            assert time.monotonic() < deadline, "clients made no progress"
            assert [u for s in senders for u in s.unexpected] == []
            time.sleep(0.01)

    run_senders(senders)
    wait_for_acks(30)
    proxy.cut()  # the database goes away mid-transaction and refuses connections for a while
    time.sleep(1.0)
    proxy.restore()
    wait_for_acks(90)
    terminate_sessions(postgres_url)
    join_senders(senders)

    sent = [rid for s in senders for rid in s.request_ids]
    assert [u for s in senders for u in s.unexpected] == []
    assert sum(len(s.acked) for s in senders) == len(sent)
    assert sum(sum(s.failures.values()) for s in senders) > 0, "the outage failed no request"
    assert sorted(stored_request_ids(pg_engine, tenant.org.id)) == sorted(sent)
    for s in senders:
        for rid, status in s.acked.items():
            assert status == "accepted" or (status == "duplicate" and s.failures[rid] > 0), rid
    assert assert_rollups_match_events(pg_engine, tenant.org.id) == len(sent)
    assert server.server_errors() == []
