"""The client against a stand-in server: batching, retries, rejection, overflow, shutdown."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from conftest import ClientFactory
from margindash_sdk import MarginDash, _guard
from servers import IngestStandIn, Reply, Request, StandIn, free_port


def test_track_sends_a_batch_in_the_documented_wire_format(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    client = make_client()
    request_id = client.track(
        model="gpt-4o-mini",
        prompt_tokens=120,
        completion_tokens=80,
        customer_id="acct_123",
        feature="summarize",
        cached_tokens=20,
        cache_write_tokens=5,
        reasoning_tokens=10,
        revenue_amount_cents=3,
        provider="openai",
        metadata={"region": "eu"},
        timestamp=datetime(2026, 2, 14, 15, 4, 5, tzinfo=UTC),
    )
    assert client.flush(timeout=5)
    [body] = ingest.server.bodies("/v1/usage")
    assert body == {
        "events": [
            {
                "request_id": request_id,
                "model_name": "gpt-4o-mini",
                "timestamp": "2026-02-14T15:04:05+00:00",
                "customer_id": "acct_123",
                "prompt_tokens": 120,
                "completion_tokens": 80,
                "feature": "summarize",
                "cached_tokens": 20,
                "cache_write_tokens": 5,
                "reasoning_tokens": 10,
                "revenue_amount_cents": 3,
                "provider": "openai",
                "metadata": {"region": "eu"},
            }
        ]
    }
    [request] = ingest.server.requests
    assert request.headers["authorization"] == "Bearer md_test_key"
    assert request.headers["user-agent"].startswith("margindash-python/")
    assert client.stats.sent == 1


def test_request_id_defaults_to_uuid4_hex_and_timestamp_to_capture_time(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    client = make_client()
    before = datetime.now(UTC)
    request_id = client.track(model="m", prompt_tokens=1, completion_tokens=1)
    assert client.flush(timeout=5)
    [event] = ingest.events
    assert request_id is not None and len(request_id) == 32
    assert event["request_id"] == request_id
    stamp = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert before <= stamp <= datetime.now(UTC)
    assert event["timestamp"].endswith("Z")


def test_events_are_batched_by_batch_size(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    client = make_client(batch_size=100, flush_interval=5.0)
    for i in range(250):
        client.track(model="m", prompt_tokens=i, completion_tokens=0, request_id=f"r{i}")
    assert client.flush(timeout=5)
    sizes = [len(body["events"]) for body in ingest.server.bodies("/v1/usage")]
    assert sizes == [100, 100, 50]
    assert [e["prompt_tokens"] for e in ingest.events] == list(range(250))


def test_a_partial_batch_waits_for_the_flush_interval(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    client = make_client(flush_interval=0.3)
    client.track(model="m", prompt_tokens=1, completion_tokens=1)
    time.sleep(0.1)
    assert ingest.server.requests == []
    assert len(ingest.wait_for(1, timeout=3)) == 1


def test_duplicates_are_counted_once(ingest: IngestStandIn, make_client: ClientFactory) -> None:
    client = make_client()
    for _ in range(3):
        client.track(model="m", prompt_tokens=1, completion_tokens=1, request_id="same")
    assert client.flush(timeout=5)
    assert len(ingest.events) == 1
    assert (client.stats.sent, client.stats.duplicates) == (1, 2)


def test_5xx_and_429_are_retried_honouring_retry_after(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    answers = iter([Reply(status=503), Reply(status=429, headers={"Retry-After": "1"})])
    times: list[float] = []

    def fault(request: Request) -> Reply | None:
        times.append(time.monotonic())
        return next(answers, None)

    ingest.fault = fault
    client = make_client()
    client.track(model="m", prompt_tokens=1, completion_tokens=1)
    assert client.flush(timeout=10)
    assert len(ingest.events) == 1
    assert len(times) == 3
    assert times[2] - times[1] >= 0.95, "Retry-After: 1 was not honoured"
    assert client.stats.sent == 1 and client.stats.failed == 0


def test_other_4xx_are_not_retried_counted_rejected_and_logged_once(
    ingest: IngestStandIn, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    ingest.fault = lambda request: Reply(
        status=401, json_body={"error": {"code": "unauthorized", "message": "unknown API key"}}
    )
    client = make_client(batch_size=1)
    with caplog.at_level(logging.WARNING, logger="margindash_sdk"):
        for i in range(3):
            client.track(model="m", prompt_tokens=1, completion_tokens=1, request_id=f"r{i}")
        assert client.flush(timeout=5)
    assert len(ingest.server.requests) == 3
    assert client.stats.rejected == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unknown API key" in warnings[0]


def test_events_rejected_inside_a_batch_are_counted(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    ingest.fault = lambda request: Reply(
        json_body={
            "accepted": 1,
            "duplicates": 0,
            "rejected": 1,
            "results": [
                {"request_id": "ok", "status": "accepted"},
                {
                    "request_id": "bad",
                    "status": "rejected",
                    "error": {"code": "invalid", "message": "prompt_tokens must be >= 0"},
                },
            ],
        }
    )
    client = make_client()
    client.track(model="m", prompt_tokens=1, completion_tokens=1, request_id="ok")
    client.track(model="m", prompt_tokens=-1, completion_tokens=1, request_id="bad")
    assert client.flush(timeout=5)
    assert (client.stats.sent, client.stats.rejected, client.stats.pending) == (1, 1, 0)


def test_batch_is_given_up_after_max_retries(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    ingest.fault = lambda request: Reply(status=500)
    client = make_client(max_retries=2)
    client.track(model="m", prompt_tokens=1, completion_tokens=1)
    assert client.flush(timeout=5)
    assert len(ingest.server.requests) == 3
    assert (client.stats.failed, client.stats.sent) == (1, 0)


def test_server_down_then_back_delivers_and_track_never_blocks(make_client: ClientFactory) -> None:
    port = free_port()
    client = make_client(base_url=f"http://127.0.0.1:{port}/v1", max_retries=50)
    started = time.perf_counter()
    ids = [client.track(model="m", prompt_tokens=1, completion_tokens=1) for _ in range(200)]
    assert time.perf_counter() - started < 0.5
    assert not client.flush(timeout=0.3)

    revived = IngestStandIn()
    revived.server = StandIn(revived, port=port)
    revived.server.start()
    try:
        assert client.flush(timeout=10)
        assert {e["request_id"] for e in revived.events} == set(ids)
        assert client.stats.sent == 200
    finally:
        revived.server.stop()


def test_slow_server_does_not_slow_track(ingest: IngestStandIn, make_client: ClientFactory) -> None:
    ingest.fault = lambda request: Reply(delay=1.0, json_body={"accepted": 0, "results": []})
    client = make_client(timeout=5.0)
    client.track(model="m", prompt_tokens=1, completion_tokens=1)
    time.sleep(0.2)  # the worker is now inside the slow request
    started = time.perf_counter()
    for _ in range(1000):
        client.track(model="m", prompt_tokens=1, completion_tokens=1)
    assert time.perf_counter() - started < 0.5
    assert client.stats.queued == 1001


def test_queue_overflow_is_dropped_and_counted(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    gate = threading.Event()
    ingest.fault = lambda request: None if gate.wait(5) else Reply(status=500)
    client = make_client(max_queue_size=10, batch_size=1)
    results = [client.track(model="m", prompt_tokens=1, completion_tokens=1) for _ in range(30)]
    gate.set()
    assert client.flush(timeout=5)
    stats = client.stats
    assert stats.dropped == results.count(None) > 0
    assert stats.queued + stats.dropped == 30
    assert stats.sent == stats.queued == len(ingest.events)


def test_shutdown_respects_its_deadline_with_a_hanging_server(
    ingest: IngestStandIn, make_client: ClientFactory
) -> None:
    ingest.fault = lambda request: Reply(delay=3.0, status=503)
    client = make_client(timeout=10.0)
    client.track(model="m", prompt_tokens=1, completion_tokens=1)
    time.sleep(0.1)
    started = time.monotonic()
    client.shutdown(timeout=0.5)
    assert time.monotonic() - started < 1.0
    assert client.track(model="m", prompt_tokens=1, completion_tokens=1) is None
    assert not client.enabled


def test_record_revenue_posts_to_revenue(ingest: IngestStandIn, make_client: ClientFactory) -> None:
    client = make_client()
    assert client.record_revenue(revenue_id="inv_1", customer_id="acme", amount="233.25") == "inv_1"
    client.record_revenue(
        revenue_id="inv_2",
        customer_id="acme",
        amount_cents=-500,
        period_start="2026-02-01",
        period_end="2026-02-28",
    )
    client.track(model="m", prompt_tokens=1, completion_tokens=1, customer_id="acme")
    assert client.flush(timeout=5)
    assert ingest.revenue == [
        {"revenue_id": "inv_1", "customer_id": "acme", "currency": "usd", "amount": "233.25"},
        {
            "revenue_id": "inv_2",
            "customer_id": "acme",
            "currency": "usd",
            "amount_cents": -500,
            "period_start": "2026-02-01",
            "period_end": "2026-02-28",
        },
    ]
    assert len(ingest.events) == 1


def test_kill_switch_makes_every_call_a_no_op(ingest: IngestStandIn) -> None:
    client = MarginDash(
        environ={"MARGINDASH_ENABLED": "false", "MARGINDASH_API_KEY": "k"}, base_url=ingest.url
    )
    assert not client.enabled
    assert client.track(model="m", prompt_tokens=1, completion_tokens=1) is None
    assert client.record_revenue(revenue_id="r", customer_id="c", amount_cents=1) is None
    assert client.flush(timeout=1) and client.shutdown(timeout=1)
    assert client.guarded_call(lambda: "called") == "called"
    assert ingest.server.requests == []
    assert client._worker is None, "a disabled client must not start a thread"


def test_missing_api_key_disables_reporting(
    ingest: IngestStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="margindash_sdk"):
        client = MarginDash(environ={}, base_url=ingest.url)
    assert not client.enabled
    assert client.track(model="m", prompt_tokens=1, completion_tokens=1) is None
    assert "no API key" in caplog.text


def test_sdk_bugs_are_swallowed_and_counted_unless_tests_ask(
    ingest: IngestStandIn, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()

    def broken(kind: str, payload: dict[str, object]) -> bool:
        raise RuntimeError("sdk bug")

    assert client._worker is not None
    monkeypatch.setattr(client._worker, "submit", broken)
    with pytest.raises(RuntimeError, match="sdk bug"):
        client.track(model="m", prompt_tokens=1, completion_tokens=1)
    monkeypatch.setattr(_guard, "RAISE_INTERNAL_ERRORS", False)
    assert client.track(model="m", prompt_tokens=1, completion_tokens=1) is None
    assert client.stats.errors == 2
