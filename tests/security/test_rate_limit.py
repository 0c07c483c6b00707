"""Per-key rate limit (MARGINDASH_RATE_LIMIT_PER_MINUTE): beyond it, 429 with Retry-After and
nothing stored; other keys are unaffected. Concurrent requests over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import Engine

from margindash.orgs.keys import create_api_key
from tests.conftest import Tenant
from tests.live_server import LiveServer
from tests.reliability.ledger import stored_request_ids
from tests.test_cli_e2e import event

LIMIT = 10
SENT = 30


def wait_out_minute_end(margin_s: float = 6.0) -> None:
    """The limit counts per clock minute: start where the whole burst fits in one minute."""
    into_minute = time.time() % 60
    if into_minute > 60 - margin_s:
        time.sleep(60 - into_minute + 0.1)


def test_rate_limit_is_per_key_with_429_and_retry_after(
    sqlite_url: str, start_server: Callable[..., LiveServer]
) -> None:
    from margindash.db.engine import make_engine
    from tests.conftest import make_tenant

    engine: Engine = make_engine(sqlite_url)
    tenant: Tenant = make_tenant(engine, "acme")
    second_ingest_key = create_api_key(engine, org_id=tenant.org.id, scope="ingest")
    server = start_server(sqlite_url, MARGINDASH_RATE_LIMIT_PER_MINUTE=str(LIMIT))

    def send(index: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return client.post("/v1/usage", json=event(f"rl-{index}"), headers=tenant.ingest)

    wait_out_minute_end()
    with ThreadPoolExecutor(SENT) as pool:
        responses = list(pool.map(send, range(SENT)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * LIMIT + [429] * (SENT - LIMIT)
    for response in responses:
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(response.headers["retry-after"]) <= 60
    accepted = {f"rl-{i}" for i, r in enumerate(responses) if r.status_code == 200}
    assert set(stored_request_ids(engine, tenant.org.id)) == accepted  # a 429 stores nothing

    # The limit is the key's: another key of the same org still gets through.
    other = {"Authorization": f"Bearer {second_ingest_key}"}
    response = httpx.post(f"{server.url}/v1/usage", json=event("other-key"), headers=other)
    assert response.status_code == 200
    limited = httpx.post(f"{server.url}/v1/usage", json=event("again"), headers=tenant.ingest)
    assert limited.status_code == 429
    # Requests without a valid key are refused before they count against anyone.
    assert httpx.get(f"{server.url}/v1/pnl").status_code == 401
    engine.dispose()
