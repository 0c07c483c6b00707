"""Stand-ins for the OpenAI and Anthropic HTTP APIs: usage blocks and SSE streams."""

from __future__ import annotations

from typing import Any

from servers import Reply, Request, sse

PROMPT = "SECRET-PROMPT-7f3a what is our margin?"
COMPLETION = "SECRET-COMPLETION-91bc it is fine"
NO_USAGE_MODEL = "no-usage-model"
FAILING_MODEL = "failing-model"

CHAT_USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 80,
    "total_tokens": 200,
    "prompt_tokens_details": {"cached_tokens": 64},
    "completion_tokens_details": {"reasoning_tokens": 16},
}
RESPONSES_USAGE = {
    "input_tokens": 50,
    "input_tokens_details": {"cached_tokens": 10},
    "output_tokens": 30,
    "output_tokens_details": {"reasoning_tokens": 5},
    "total_tokens": 80,
}
ANTHROPIC_USAGE = {
    "input_tokens": 100,
    "output_tokens": 40,
    "cache_creation_input_tokens": 200,
    "cache_read_input_tokens": 300,
}


def _error(kind: str) -> Reply:
    return Reply(status=400, json_body={"error": {"type": kind, "message": "bad request"}})


def openai_api(request: Request) -> Reply:
    """Answer /v1/chat/completions and /v1/responses like OpenAI."""
    body = request.json()
    model = body["model"]
    if model == FAILING_MODEL:
        return _error("invalid_request_error")
    returned_model = "gpt-4o-mini-2024-07-18" if model == "gpt-4o-mini" else model
    with_usage = model != NO_USAGE_MODEL
    if request.path == "/v1/chat/completions":
        return _chat(body, returned_model, with_usage)
    return _responses(body, returned_model, with_usage)


def _chat(body: dict[str, Any], model: str, with_usage: bool) -> Reply:
    base = {"id": "chatcmpl-abc", "created": 1, "model": model}
    if not body.get("stream"):
        return Reply(
            json_body={
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": COMPLETION},
                        "finish_reason": "stop",
                    }
                ],
                "usage": CHAT_USAGE if with_usage else None,
            }
        )
    chunk = {**base, "object": "chat.completion.chunk"}
    frames: list[tuple[str | None, Any]] = [
        (None, {**chunk, "choices": [{"index": 0, "delta": {"content": part}}]})
        for part in (COMPLETION[:10], COMPLETION[10:])
    ]
    frames.append(
        (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    )
    options = body.get("stream_options") or {}
    if with_usage and options.get("include_usage"):
        frames.append((None, {**chunk, "choices": [], "usage": CHAT_USAGE}))
    frames.append((None, "[DONE]"))
    return Reply(chunks=sse(frames))


def _response_object(model: str, with_usage: bool, complete: bool) -> dict[str, Any]:
    message = {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": COMPLETION, "annotations": []}],
    }
    return {
        "id": "resp_abc",
        "object": "response",
        "created_at": 1,
        "model": model,
        "status": "completed" if complete else "in_progress",
        "output": [message] if complete else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": RESPONSES_USAGE if with_usage and complete else None,
    }


def _responses(body: dict[str, Any], model: str, with_usage: bool) -> Reply:
    if not body.get("stream"):
        return Reply(json_body=_response_object(model, with_usage, complete=True))
    events: list[tuple[str | None, Any]] = [
        (
            "response.created",
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": _response_object(model, with_usage, complete=False),
            },
        ),
        *(
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": i + 1,
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": part,
                    "logprobs": [],
                },
            )
            for i, part in enumerate((COMPLETION[:10], COMPLETION[10:]))
        ),
        (
            "response.completed",
            {
                "type": "response.completed",
                "sequence_number": 3,
                "response": _response_object(model, with_usage, complete=True),
            },
        ),
    ]
    return Reply(chunks=sse(events))


def anthropic_api(request: Request) -> Reply:
    """Answer /v1/messages like Anthropic, with prompt-caching usage."""
    body = request.json()
    model = body["model"]
    if model == FAILING_MODEL:
        return _error("invalid_request_error")
    message = {
        "id": "msg_01abc",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": COMPLETION}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": ANTHROPIC_USAGE,
    }
    if not body.get("stream"):
        return Reply(json_body=message)
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**ANTHROPIC_USAGE, "output_tokens": 1},
    }
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": part},
                },
            )
            for part in (COMPLETION[:10], COMPLETION[10:])
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return Reply(chunks=sse(events))
