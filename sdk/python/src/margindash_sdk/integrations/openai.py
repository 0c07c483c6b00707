"""Usage reporting for the official `openai` client: Chat Completions and Responses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ._patching import Usage, count_text_chars, field, instrument, uninstrument

if TYPE_CHECKING:
    from ..client import MarginDash

ClientT = TypeVar("ClientT")


class ChatCompletions:
    """Reads `chat.completions.create` calls, responses and chunks."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def prepare(self, kwargs: dict[str, Any]) -> None:
        """Ask for the usage chunk at the end of a stream unless the caller decided otherwise."""
        if kwargs.get("stream") is not True:
            return
        options = kwargs.get("stream_options")
        if not isinstance(options, dict):
            kwargs["stream_options"] = {"include_usage": True}
        elif "include_usage" not in options:
            kwargs["stream_options"] = {**options, "include_usage": True}

    def usage_of(self, response: Any) -> Usage | None:
        """Usage of a ChatCompletion; None for objects that are not one."""
        if not hasattr(response, "usage") or not hasattr(response, "choices"):
            return None
        usage = Usage(model=response.model, response_id=response.id)
        _fill(usage, response.usage)
        if response.usage is None:
            usage.completion_chars = sum(
                len(field(choice, "message", "content") or "") for choice in response.choices or []
            )
        return usage

    def observe(self, item: Any, usage: Usage) -> None:
        """Fold one ChatCompletionChunk into usage."""
        usage.model = field(item, "model") or usage.model
        usage.response_id = field(item, "id") or usage.response_id
        if field(item, "usage") is not None:
            _fill(usage, item.usage)
        for choice in field(item, "choices") or []:
            content = field(choice, "delta", "content")
            if isinstance(content, str):
                usage.completion_chars += len(content)

    def prompt_chars(self, kwargs: dict[str, Any]) -> int:
        """Characters of the messages' text."""
        return count_text_chars(kwargs.get("messages"))


class Responses:
    """Reads `responses.create` calls, responses and stream events."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def prepare(self, kwargs: dict[str, Any]) -> None:
        """Nothing to change: a Responses stream always ends with the full response and usage."""

    def usage_of(self, response: Any) -> Usage | None:
        """Usage of a Response; None for objects that are not one."""
        if not hasattr(response, "usage") or not hasattr(response, "output"):
            return None
        usage = Usage(model=response.model, response_id=response.id)
        self._fill(usage, response)
        return usage

    def observe(self, item: Any, usage: Usage) -> None:
        """Fold one Responses stream event into usage."""
        kind = field(item, "type")
        if kind == "response.output_text.delta":
            usage.completion_chars += len(field(item, "delta") or "")
        elif kind in {"response.created", "response.completed", "response.incomplete"}:
            response = item.response
            usage.model = field(response, "model") or usage.model
            usage.response_id = field(response, "id") or usage.response_id
            if kind != "response.created":
                self._fill(usage, response)
        elif kind == "response.failed":
            usage.model = field(item, "response", "model") or usage.model

    def prompt_chars(self, kwargs: dict[str, Any]) -> int:
        """Characters of the input and instructions."""
        return count_text_chars(kwargs.get("input")) + count_text_chars(kwargs.get("instructions"))

    @staticmethod
    def _fill(usage: Usage, response: Any) -> None:
        counts = field(response, "usage")
        if counts is None:
            text = getattr(response, "output_text", None)
            if isinstance(text, str) and not usage.completion_chars:
                usage.completion_chars = len(text)
            return
        usage.prompt_tokens = counts.input_tokens
        usage.completion_tokens = counts.output_tokens
        usage.cached_tokens = field(counts, "input_tokens_details", "cached_tokens")
        usage.cache_write_tokens = field(counts, "input_tokens_details", "cache_write_tokens")
        usage.reasoning_tokens = field(counts, "output_tokens_details", "reasoning_tokens")


def _fill(usage: Usage, counts: Any) -> None:
    if counts is None:
        return
    usage.prompt_tokens = counts.prompt_tokens
    usage.completion_tokens = counts.completion_tokens
    usage.cached_tokens = field(counts, "prompt_tokens_details", "cached_tokens")
    usage.cache_write_tokens = field(counts, "prompt_tokens_details", "cache_write_tokens")
    usage.reasoning_tokens = field(counts, "completion_tokens_details", "reasoning_tokens")


def instrument_openai(client: ClientT, tracker: MarginDash) -> ClientT:
    """Report every `chat.completions.create` and `responses.create` of an (Async)OpenAI client."""
    provider = "azure" if "Azure" in type(client).__name__ else "openai"
    return instrument(  # type: ignore[no-any-return]
        client,
        tracker,
        [
            (("chat", "completions"), ChatCompletions(provider)),
            (("responses",), Responses(provider)),
        ],
    )


def uninstrument_openai(client: ClientT) -> ClientT:
    """Undo `instrument_openai`."""
    return uninstrument(client)  # type: ignore[no-any-return]
