"""The real `anthropic` client, pointed at a loopback Anthropic stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import ClientFactory, require
from margindash_sdk import (
    MarginDash,
    instrument_anthropic,
    margindash_context,
    uninstrument_anthropic,
)
from providers import ANTHROPIC_USAGE, COMPLETION, FAILING_MODEL, PROMPT, anthropic_api
from servers import IngestStandIn, StandIn

anthropic = require("anthropic")

MODEL = "claude-haiku-4-5-20251001"
MESSAGES = [{"role": "user", "content": PROMPT}]

# Anthropic's input_tokens excludes cache reads and writes; prompt_tokens includes them.
EXPECTED = {
    "request_id": "msg_01abc",
    "model_name": MODEL,
    "provider": "anthropic",
    "prompt_tokens": 100 + 300 + 200,
    "completion_tokens": ANTHROPIC_USAGE["output_tokens"],
    "cached_tokens": 300,
    "cache_write_tokens": 200,
}


@pytest.fixture
def provider() -> Iterator[StandIn]:
    server = StandIn(anthropic_api).start()
    yield server
    server.stop()


@pytest.fixture
def tracker(make_client: ClientFactory) -> MarginDash:
    return make_client()


def base_url(provider: StandIn) -> str:
    return f"http://127.0.0.1:{provider.port}"


def sent_events(tracker: MarginDash, ingest: IngestStandIn) -> list[dict[str, Any]]:
    """Every event in every batch margindash received, with no prompt or completion text."""
    assert tracker.flush(timeout=5)
    assert b"SECRET" not in ingest.server.raw()
    events = [e for body in ingest.server.bodies("/v1/usage") for e in body["events"]]
    return [{k: v for k, v in e.items() if k != "timestamp"} for e in events]


def test_message_reports_cache_read_and_write(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = instrument_anthropic(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=base_url(provider), max_retries=0),
        tracker,
    )
    with margindash_context(customer_id="acct_123", feature="summarize"):
        message = client.messages.create(
            model=MODEL, max_tokens=100, system="be brief", messages=MESSAGES
        )
    assert message.content[0].text == COMPLETION
    assert sent_events(tracker, ingest) == [
        {**EXPECTED, "customer_id": "acct_123", "feature": "summarize"}
    ]


def test_stream_reports_usage_from_start_and_delta_events(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = instrument_anthropic(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=base_url(provider), max_retries=0),
        tracker,
    )
    stream = client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=MESSAGES,
        stream=True,
        margindash_customer_id="acct_s",
        margindash_feature="chat",
    )
    text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    assert text == COMPLETION
    assert not any(key.startswith("margindash") for key in provider.requests[0].json())
    assert sent_events(tracker, ingest) == [
        {**EXPECTED, "customer_id": "acct_s", "feature": "chat"}
    ]


def test_async_message_and_stream(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    async def run() -> str:
        client = instrument_anthropic(
            anthropic.AsyncAnthropic(
                api_key="sk-ant-test", base_url=base_url(provider), max_retries=0
            ),
            tracker,
        )
        with margindash_context(customer_id="acct_async"):
            await client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
            stream = await client.messages.create(
                model=MODEL, max_tokens=10, messages=MESSAGES, stream=True
            )
            async with stream:
                parts = [e.delta.text async for e in stream if e.type == "content_block_delta"]
        await client.close()
        return "".join(parts)

    assert asyncio.run(run()) == COMPLETION
    assert sent_events(tracker, ingest) == [{**EXPECTED, "customer_id": "acct_async"}] * 2


def test_provider_errors_propagate_unchanged(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = instrument_anthropic(
        anthropic.Anthropic(api_key="sk-ant-test", base_url=base_url(provider), max_retries=0),
        tracker,
    )
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model=FAILING_MODEL, max_tokens=10, messages=MESSAGES)
    assert raised.value.status_code == 400
    assert sent_events(tracker, ingest) == []


def test_uninstrument_stops_reporting(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=base_url(provider), max_retries=0)
    instrument_anthropic(client, tracker)
    instrument_anthropic(client, tracker)
    client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    uninstrument_anthropic(client)
    client.messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
    assert len(sent_events(tracker, ingest)) == 1
