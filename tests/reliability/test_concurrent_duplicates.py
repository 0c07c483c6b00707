"""Many clients sending the same request ids at once, to two server processes on one database:
each event is stored and counted once, and every other copy is answered `duplicate`."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from margindash.db.tables import ingest_stats
from tests.conftest import Tenant
from tests.live_server import LiveServer
from tests.reliability.ledger import assert_rollups_match_events, stored_request_ids
from tests.test_cli_e2e import event

IDS = [f"dup-{i}" for i in range(20)]
CLIENTS = 8
RETRIES = 20


def test_same_request_ids_from_many_clients_and_two_processes_are_stored_once(
    database_url: str,
    engine: Engine,
    tenant: Tenant,
    start_server: Callable[..., LiveServer],
) -> None:
    with ThreadPoolExecutor(2) as starting:
        servers = list(starting.map(lambda _: start_server(database_url), range(2)))

    retried: set[str] = set()

    def post(client: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The results of a 2xx answer; a busy database's 503 is retried, as an SDK would."""
        for _ in range(RETRIES):
            response = client.post("/v1/usage", json=body)
            if response.status_code != 503:
                assert response.status_code == 200, response.text
                results: list[dict[str, Any]] = response.json()["results"]
                return results
            retried.update(e["request_id"] for e in body.get("events", [body]))
            time.sleep(0.1)
        raise AssertionError(f"still 503 after {RETRIES} tries")

    def client_run(client_no: int) -> list[tuple[str, str]]:
        """Every id once as a single event and once inside a batch, in this client's order."""
        order = random.Random(client_no).sample(IDS, len(IDS))
        base = servers[client_no % 2].url
        with httpx.Client(base_url=base, headers=tenant.ingest, timeout=30) as client:
            results = [r for request_id in order[:10] for r in post(client, event(request_id))]
            results += post(client, {"events": [event(request_id) for request_id in order]})
        return [(r["request_id"], r["status"]) for r in results]

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [a for run in pool.map(client_run, range(CLIENTS)) for a in run]

    accepted = Counter(rid for rid, status in answers if status == "accepted")
    # Exactly one copy of each id was answered `accepted`, across both processes (an id retried
    # after a 503 may have been stored by the attempt that failed: then none was).
    assert accepted == Counter({rid: 1 for rid in IDS if rid not in retried or rid in accepted})
    assert {status for _, status in answers} == {"accepted", "duplicate"}
    assert sorted(stored_request_ids(engine, tenant.org.id)) == sorted(IDS)
    assert assert_rollups_match_events(engine, tenant.org.id) == len(IDS)
    with engine.connect() as conn:
        counted = conn.execute(
            select(func.sum(ingest_stats.c.duplicates)).where(
                ingest_stats.c.org_id == tenant.org.id
            )
        ).scalar_one()
    assert counted == len(answers) - len(IDS)
    for server in servers:
        assert server.server_errors() == []
