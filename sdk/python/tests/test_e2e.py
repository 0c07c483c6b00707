"""End to end: the SDK against the real margindash server (`margindash init` + `serve`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import FAST, require
from margindash_sdk import BudgetExceeded, MarginDash, instrument_openai, rollout_bucket
from providers import PROMPT, openai_api
from real_server import MarginDashServer, find_margindash
from servers import StandIn

pytestmark = pytest.mark.e2e

SRC = str(Path(__file__).parents[1] / "src")


@pytest.fixture(scope="session")
def margindash_bin() -> str:
    executable = find_margindash()
    if executable is None:
        message = (
            "the margindash server is not installed: set MARGINDASH_BIN or put `margindash` on "
            "PATH (pip install -e . at the repository root)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return executable


@pytest.fixture(scope="session")
def server(
    margindash_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MarginDashServer]:
    running = MarginDashServer(margindash_bin, tmp_path_factory.mktemp("margindash")).start()
    yield running
    running.stop()


@pytest.fixture
def clients(server: MarginDashServer) -> Iterator[list[MarginDash]]:
    made: list[MarginDash] = []
    yield made
    for client in made:
        client.shutdown(timeout=1)


def new_client(server: MarginDashServer, clients: list[MarginDash], **overrides: Any) -> MarginDash:
    options = {"api_key": server.ingest_key, "base_url": server.url, **FAST, **overrides}
    client = MarginDash(environ={}, **options)
    clients.append(client)
    return client


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def pnl_rows(server: MarginDashServer, prefix: str) -> dict[str, dict[str, Any]]:
    """P&L rows by customer whose id starts with `prefix`, over this whole month and a day."""
    month_start = datetime.now(UTC).date().replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    response = server.get(
        "/pnl",
        **{
            "from": (month_start - timedelta(days=1)).isoformat(),
            "to": next_month.isoformat(),
            "group_by": "customer",
        },
    )
    assert response.status_code == 200, response.text
    return {row["key"]: row for row in response.json()["rows"] if row["key"].startswith(prefix)}


def run_python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "PYTHONPATH": SRC, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_tracked_events_and_revenue_arrive(
    server: MarginDashServer, clients: list[MarginDash]
) -> None:
    prefix = unique("e2e")
    client = new_client(server, clients)
    ids = [
        client.track(
            model="gpt-4o-mini",
            prompt_tokens=120,
            completion_tokens=80,
            cached_tokens=20,
            customer_id=f"{prefix}_a",
            feature="summarize",
        ),
        client.track(
            model="gpt-4o-mini", prompt_tokens=30, completion_tokens=10, customer_id=f"{prefix}_a"
        ),
        client.track(
            model="gpt-4o-mini", prompt_tokens=5, completion_tokens=5, customer_id=f"{prefix}_b"
        ),
    ]
    client.record_revenue(
        revenue_id=unique("inv"),
        customer_id=f"{prefix}_a",
        amount="10.00",
        month=datetime.now(UTC).date(),
    )
    assert client.flush(timeout=10)
    assert client.stats.sent == 4 and client.stats.rejected == 0

    stored = server.get(f"/usage/{ids[0]}")
    assert stored.status_code == 200, stored.text
    event = stored.json()
    assert (event["customer_id"], event["feature"], event["model_name"]) == (
        f"{prefix}_a",
        "summarize",
        "gpt-4o-mini",
    )
    assert (event["prompt_tokens"], event["completion_tokens"], event["cached_tokens"]) == (
        120,
        80,
        20,
    )
    assert event["priced"] is True and event["cost_usd"] is not None

    rows = pnl_rows(server, prefix)
    assert (rows[f"{prefix}_a"]["events"], rows[f"{prefix}_a"]["prompt_tokens"]) == (2, 150)
    assert (rows[f"{prefix}_b"]["events"], rows[f"{prefix}_b"]["prompt_tokens"]) == (1, 5)
    assert rows[f"{prefix}_a"]["revenue"] == "10.00"


def test_guarded_call_stops_the_spellings_the_server_books_as_a_blocked_model(
    server: MarginDashServer, clients: list[MarginDash]
) -> None:
    """A block budget on a dated Anthropic name is booked as the catalogue's model; once spent,
    every spelling the server resolves to it is refused before the provider is called."""
    budget = {
        "name": unique("haiku"),
        "scope": {"type": "model", "value": "claude-3-5-haiku-20241022"},
        "limit_usd": "0.01",
        "thresholds": [],
        "action": "block",
    }
    created = httpx.post(
        f"{server.url}/budgets",
        json=budget,
        headers={"Authorization": f"Bearer {server.admin_key}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    booked = created.json()["scope"]["value"]
    assert booked != budget["scope"]["value"]
    client = new_client(server, clients, blocklist_ttl=0.1)
    client.track(model="anthropic/claude-3.5-haiku", prompt_tokens=0, completion_tokens=10_000)
    assert client.flush(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            client.guarded_call(lambda **_: None, model=booked)
        except BudgetExceeded:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the model budget never blocked")
    for spelling in ("claude-3-5-haiku-20241022", "anthropic/claude-3.5-haiku", booked.upper()):
        with pytest.raises(BudgetExceeded) as raised:
            client.guarded_call(lambda **_: None, model=spelling)
        assert (raised.value.scope_type, raised.value.value) == ("model", booked)
    assert client.guarded_call(lambda **kw: "served", model="claude-3-opus-20240229") == "served"


def test_duplicates_are_counted_once(server: MarginDashServer, clients: list[MarginDash]) -> None:
    customer = unique("dup")
    client = new_client(server, clients)
    for _ in range(2):
        client.track(
            model="gpt-4o-mini",
            prompt_tokens=7,
            completion_tokens=3,
            customer_id=customer,
            request_id=f"{customer}_req",
        )
        assert client.flush(timeout=10)
    assert (client.stats.sent, client.stats.duplicates) == (1, 1)
    assert pnl_rows(server, customer)[customer]["events"] == 1


def test_chars_only_event_is_stored_as_estimated(
    server: MarginDashServer, clients: list[MarginDash]
) -> None:
    client = new_client(server, clients)
    request_id = client.track(
        model="gpt-4o-mini", customer_id=unique("est"), prompt_chars=400, completion_chars=100
    )
    assert client.flush(timeout=10)
    event = server.get(f"/usage/{request_id}").json()
    assert event["estimated"] is True and event["prompt_tokens"] > 0


def test_server_down_then_back(
    margindash_bin: str, tmp_path: Path, clients: list[MarginDash]
) -> None:
    later = MarginDashServer(margindash_bin, tmp_path)
    client = MarginDash(
        environ={},
        api_key=later.ingest_key,
        base_url=later.url,
        **{**FAST, "max_retries": 100},
    )
    clients.append(client)
    started = time.perf_counter()
    ids = [
        client.track(model="gpt-4o-mini", prompt_tokens=1, completion_tokens=1, customer_id="c")
        for _ in range(50)
    ]
    assert time.perf_counter() - started < 0.5
    assert not client.flush(timeout=0.5)
    later.start()
    try:
        assert client.flush(timeout=30)
        assert client.stats.sent == 50
        assert all(later.get(f"/usage/{rid}").status_code == 200 for rid in ids[:3])
    finally:
        later.stop()


def test_paused_server_then_resumed_delivers_each_event_once(
    server: MarginDashServer, clients: list[MarginDash]
) -> None:
    customer = unique("slow")
    client = new_client(server, clients, timeout=0.5, max_retries=100)
    server.pause()
    try:
        started = time.perf_counter()
        for _ in range(20):
            client.track(
                model="gpt-4o-mini", prompt_tokens=1, completion_tokens=1, customer_id=customer
            )
        assert time.perf_counter() - started < 0.5
        assert not client.flush(timeout=1.0)
    finally:
        server.resume()
    assert client.flush(timeout=30)
    assert pnl_rows(server, customer)[customer]["events"] == 20


def test_queue_overflow_is_counted(server: MarginDashServer, clients: list[MarginDash]) -> None:
    customer = unique("full")
    client = new_client(
        server, clients, max_queue_size=5, batch_size=1, timeout=0.5, max_retries=100
    )
    server.pause()
    try:
        results = [
            client.track(
                model="gpt-4o-mini", prompt_tokens=1, completion_tokens=1, customer_id=customer
            )
            for _ in range(50)
        ]
    finally:
        server.resume()
    assert client.flush(timeout=30)
    stats = client.stats
    assert stats.dropped == results.count(None) >= 40
    assert stats.queued + stats.dropped == 50
    assert pnl_rows(server, customer)[customer]["events"] == stats.queued


def test_fork_child_reports_with_its_own_worker(
    server: MarginDashServer, clients: list[MarginDash]
) -> None:
    customer = unique("fork")
    client = new_client(server, clients, flush_interval=5.0)
    before = [
        client.track(
            model="gpt-4o-mini", prompt_tokens=1, completion_tokens=1, customer_id=customer
        )
        for _ in range(2)
    ]
    child_id = f"{customer}_child"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            client.track(
                model="gpt-4o-mini",
                prompt_tokens=1,
                completion_tokens=1,
                customer_id=customer,
                request_id=child_id,
            )
            delivered = client.flush(timeout=15) and client.stats.sent == 1
            code = 0 if delivered else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.flush(timeout=15)
    assert server.get(f"/usage/{child_id}").status_code == 200
    assert all(server.get(f"/usage/{rid}").status_code == 200 for rid in before)
    assert pnl_rows(server, customer)[customer]["events"] == 3


EXIT_SCRIPT = """
import sys
from margindash_sdk import MarginDash
client = MarginDash()
queued = client.track(
    model="gpt-4o-mini", prompt_tokens=3, completion_tokens=2,
    customer_id="exit_customer", request_id=sys.argv[1],
)
print(queued)
"""


def test_events_are_flushed_at_interpreter_exit(server: MarginDashServer) -> None:
    request_id = unique("exit")
    env = {"MARGINDASH_API_KEY": server.ingest_key, "MARGINDASH_INGEST_URL": server.url}
    started = time.monotonic()
    finished = run_python(EXIT_SCRIPT, env, request_id)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == request_id
    assert time.monotonic() - started < 10
    assert server.get(f"/usage/{request_id}").status_code == 200


def test_kill_switch_sends_nothing(server: MarginDashServer) -> None:
    request_id = unique("killed")
    env = {
        "MARGINDASH_API_KEY": server.ingest_key,
        "MARGINDASH_INGEST_URL": server.url,
        "MARGINDASH_ENABLED": "false",
    }
    finished = run_python(EXIT_SCRIPT, env, request_id)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "None"
    assert server.get(f"/usage/{request_id}").status_code == 404


CANARY_SCRIPT = """
import json, sys
from margindash_sdk import MarginDash
client = MarginDash()
for customer in json.loads(sys.argv[1]):
    client.track(model="gpt-4o-mini", prompt_tokens=1, completion_tokens=1, customer_id=customer)
"""


def test_canary_in_another_process_sends_exactly_the_hashed_customers(
    server: MarginDashServer,
) -> None:
    prefix = unique("canary")
    customers = [f"{prefix}_{i}" for i in range(40)]
    env = {
        "MARGINDASH_API_KEY": server.ingest_key,
        "MARGINDASH_INGEST_URL": server.url,
        "MARGINDASH_ROLLOUT_PERCENT": "30",
        "PYTHONHASHSEED": "4242",
    }
    finished = run_python(CANARY_SCRIPT, env, json.dumps(customers))
    assert finished.returncode == 0, finished.stderr
    expected = {c for c in customers if rollout_bucket(c) < 3000}
    assert 0 < len(expected) < len(customers)
    assert set(pnl_rows(server, prefix)) == expected


def test_openai_wrapper_reports_priced_usage(
    server: MarginDashServer, clients: list[MarginDash]
) -> None:
    openai = require("openai")
    provider = StandIn(openai_api).start()
    try:
        tracker = new_client(server, clients)
        client = instrument_openai(
            openai.OpenAI(api_key="sk-test", base_url=provider.url, max_retries=0), tracker
        )
        customer = unique("wrapped")
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": PROMPT}],
            margindash_customer_id=customer,
        )
        assert tracker.flush(timeout=10)
    finally:
        provider.stop()
    event = server.get("/usage/chatcmpl-abc").json()
    assert event["customer_id"] == customer
    assert event["model_name"] == "gpt-4o-mini-2024-07-18"
    assert (event["prompt_tokens"], event["cached_tokens"], event["reasoning_tokens"]) == (
        120,
        64,
        16,
    )
    assert event["priced"] is True
