"""The real `openai` client, pointed at a loopback OpenAI stand-in, reporting to margindash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import ClientFactory, require
from margindash_sdk import (
    MarginDash,
    _guard,
    instrument_openai,
    margindash_context,
    uninstrument_openai,
)
from providers import (
    CHAT_USAGE,
    COMPLETION,
    FAILING_MODEL,
    NO_USAGE_MODEL,
    PROMPT,
    RESPONSES_USAGE,
    openai_api,
)
from servers import IngestStandIn, StandIn

openai = require("openai")

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]


@pytest.fixture
def provider() -> Iterator[StandIn]:
    server = StandIn(openai_api).start()
    yield server
    server.stop()


@pytest.fixture
def tracker(make_client: ClientFactory) -> MarginDash:
    return make_client()


def settled(tracker: MarginDash, ingest: IngestStandIn) -> list[dict[str, Any]]:
    """Every event margindash received, after checking no prompt or completion text was sent."""
    assert tracker.flush(timeout=5)
    raw = ingest.server.raw()
    assert PROMPT.encode() not in raw and b"SECRET" not in raw
    return ingest.events


def sync_client(provider: StandIn, tracker: MarginDash) -> Any:
    client = openai.OpenAI(api_key="sk-test", base_url=provider.url, max_retries=0)
    return instrument_openai(client, tracker)


def async_client(provider: StandIn, tracker: MarginDash) -> Any:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=provider.url, max_retries=0)
    return instrument_openai(client, tracker)


def expected_chat_event(**overrides: Any) -> dict[str, Any]:
    return {
        "request_id": "chatcmpl-abc",
        "model_name": "gpt-4o-mini-2024-07-18",
        "provider": "openai",
        "prompt_tokens": CHAT_USAGE["prompt_tokens"],
        "completion_tokens": CHAT_USAGE["completion_tokens"],
        "cached_tokens": 64,
        "reasoning_tokens": 16,
        **overrides,
    }


def without_timestamp(event: dict[str, Any]) -> dict[str, Any]:
    assert event["timestamp"].endswith("Z")
    return {k: v for k, v in event.items() if k != "timestamp"}


def test_chat_completion_reports_usage_with_context_attribution(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = sync_client(provider, tracker)
    with margindash_context(customer_id="acct_123", feature="summarize"):
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == COMPLETION
    [event] = settled(tracker, ingest)
    assert without_timestamp(event) == expected_chat_event(
        customer_id="acct_123", feature="summarize"
    )


def test_chat_stream_asks_for_usage_and_call_arguments_are_stripped(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = sync_client(provider, tracker)
    with margindash_context(customer_id="from_context", feature="chat"):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            margindash_customer_id="acct_9",
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == COMPLETION
    sent = provider.requests[0].json()
    assert sent["stream_options"] == {"include_usage": True}
    assert not any(key.startswith("margindash") for key in sent)
    [event] = settled(tracker, ingest)
    assert without_timestamp(event) == expected_chat_event(customer_id="acct_9", feature="chat")


def test_stream_used_as_context_manager_reports_once(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = sync_client(provider, tracker)
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as stream:
        chunks = list(stream)
    assert chunks[-1].usage.prompt_tokens == 120
    assert len(settled(tracker, ingest)) == 1


def test_async_chat_plain_and_streaming(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    async def run() -> str:
        client = async_client(provider, tracker)
        with margindash_context(customer_id="acct_async"):
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            parts = [
                chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices
            ]
        await client.close()
        return "".join(parts)

    assert asyncio.run(run()) == COMPLETION
    assert provider.requests[1].json()["stream_options"] == {"include_usage": True}
    events = settled(tracker, ingest)
    # Both calls carry the provider's id; margindash counts that request_id once.
    assert len(events) == 1 and tracker.stats.duplicates == 1
    assert without_timestamp(events[0]) == expected_chat_event(customer_id="acct_async")


def test_responses_plain_and_streaming(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = sync_client(provider, tracker)
    response = client.responses.create(
        model="gpt-4.1", input=PROMPT, margindash_customer_id="acct_r"
    )
    assert response.output_text == COMPLETION
    events = list(client.responses.create(model="gpt-4.1", input=PROMPT, stream=True))
    assert events[-1].type == "response.completed"
    expected = {
        "request_id": "resp_abc",
        "model_name": "gpt-4.1",
        "provider": "openai",
        "prompt_tokens": RESPONSES_USAGE["input_tokens"],
        "completion_tokens": RESPONSES_USAGE["output_tokens"],
        "cached_tokens": 10,
        "reasoning_tokens": 5,
    }
    [first] = settled(tracker, ingest)
    assert without_timestamp(first) == {**expected, "customer_id": "acct_r"}
    batches = [e for body in ingest.server.bodies("/v1/usage") for e in body["events"]]
    assert [without_timestamp(e) for e in batches] == [
        {**expected, "customer_id": "acct_r"},
        expected,
    ]


def test_missing_usage_is_estimated_from_character_counts(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = sync_client(provider, tracker)
    client.chat.completions.create(model=NO_USAGE_MODEL, messages=MESSAGES)
    list(
        client.chat.completions.create(
            model=NO_USAGE_MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": False},
        )
    )
    assert provider.requests[1].json()["stream_options"] == {"include_usage": False}
    assert tracker.flush(timeout=5)
    sent = [e for body in ingest.server.bodies("/v1/usage") for e in body["events"]]
    prompt_chars = len("be brief") + len(PROMPT)
    for event in sent:
        assert "prompt_tokens" not in event and "completion_tokens" not in event
        assert (event["prompt_chars"], event["completion_chars"]) == (
            prompt_chars,
            len(COMPLETION),
        )
    assert len(sent) == 2
    settled(tracker, ingest)


def test_provider_errors_propagate_unchanged_and_report_nothing(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = sync_client(provider, tracker)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=FAILING_MODEL, messages=MESSAGES)
    assert raised.value.status_code == 400
    assert settled(tracker, ingest) == []


def test_instrumenting_twice_reports_once_and_undo_restores_the_client(
    provider: StandIn, tracker: MarginDash, ingest: IngestStandIn
) -> None:
    client = sync_client(provider, tracker)
    instrument_openai(client, tracker)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert tracker.flush(timeout=5)
    assert len(ingest.server.bodies("/v1/usage")) == 1

    uninstrument_openai(client)
    assert "create" not in vars(client.chat.completions)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.responses.create(model="gpt-4.1", input=PROMPT)
    assert tracker.flush(timeout=5)
    assert len(ingest.server.bodies("/v1/usage")) == 1


def test_an_sdk_bug_while_reading_usage_never_breaks_the_call(
    provider: StandIn,
    tracker: MarginDash,
    ingest: IngestStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = sync_client(provider, tracker)
    monkeypatch.setattr(_guard, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(tracker, "track", _explode)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == COMPLETION
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    assert chunks[-1].usage is not None
    assert tracker.stats.errors == 2


def _explode(**kwargs: Any) -> None:
    raise RuntimeError("sdk bug")
