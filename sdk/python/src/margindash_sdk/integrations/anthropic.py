"""Usage reporting for the official `anthropic` client: Messages, including prompt caching."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ._patching import Usage, count_text_chars, field, instrument, uninstrument

if TYPE_CHECKING:
    from ..client import MarginDash

ClientT = TypeVar("ClientT")

_PROVIDER_BY_CLIENT = {"AnthropicBedrock": "aws", "AnthropicVertex": "google"}


class Messages:
    """Reads `messages.create` calls, messages and stream events."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def prepare(self, kwargs: dict[str, Any]) -> None:
        """Nothing to change: Anthropic streams always carry usage."""

    def usage_of(self, response: Any) -> Usage | None:
        """Usage of a Message; None for objects that are not one."""
        if not hasattr(response, "usage") or not hasattr(response, "content"):
            return None
        usage = Usage(model=response.model, response_id=response.id)
        if response.usage is None:
            usage.completion_chars = sum(
                len(field(block, "text") or "") for block in response.content or []
            )
        else:
            _fill(usage, response.usage)
        return usage

    def observe(self, item: Any, usage: Usage) -> None:
        """Fold one stream event into usage (counts in message_delta are cumulative)."""
        kind = field(item, "type")
        if kind == "message_start":
            usage.model = field(item, "message", "model") or usage.model
            usage.response_id = field(item, "message", "id") or usage.response_id
            _fill(usage, field(item, "message", "usage"))
        elif kind == "message_delta":
            _fill(usage, field(item, "usage"))
        elif kind == "content_block_delta":
            text = field(item, "delta", "text")
            if isinstance(text, str):
                usage.completion_chars += len(text)

    def prompt_chars(self, kwargs: dict[str, Any]) -> int:
        """Characters of the system prompt and messages."""
        return count_text_chars(kwargs.get("system")) + count_text_chars(kwargs.get("messages"))


def _fill(usage: Usage, counts: Any) -> None:
    # Anthropic's input_tokens excludes cache reads and writes; margindash's prompt_tokens
    # includes them (OpenAI's convention, as genai-prices counts them), so the parts are summed.
    if counts is None:
        return
    uncached = field(counts, "input_tokens")
    cache_read = field(counts, "cache_read_input_tokens")
    cache_write = field(counts, "cache_creation_input_tokens")
    if cache_read is not None:
        usage.cached_tokens = cache_read
    if cache_write is not None:
        usage.cache_write_tokens = cache_write
    if uncached is not None:
        usage.prompt_tokens = (
            uncached + (usage.cached_tokens or 0) + (usage.cache_write_tokens or 0)
        )
    output = field(counts, "output_tokens")
    if output is not None:
        usage.completion_tokens = output
    thinking = field(counts, "output_tokens_details", "thinking_tokens")
    if thinking is not None:
        usage.reasoning_tokens = thinking


def instrument_anthropic(client: ClientT, tracker: MarginDash) -> ClientT:
    """Report every `messages.create` (and `beta.messages.create`) of an (Async)Anthropic client."""
    provider = _PROVIDER_BY_CLIENT.get(type(client).__name__.removeprefix("Async"), "anthropic")
    return instrument(  # type: ignore[no-any-return]
        client,
        tracker,
        [(("messages",), Messages(provider)), (("beta", "messages"), Messages(provider))],
    )


def uninstrument_anthropic(client: ClientT) -> ClientT:
    """Undo `instrument_anthropic`."""
    return uninstrument(client)  # type: ignore[no-any-return]
