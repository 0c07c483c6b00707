"""Shared machinery of the provider wrappers: patch once, observe usage, report, undo."""

from __future__ import annotations

import functools
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ..context import current_attribution

if TYPE_CHECKING:
    from ..client import MarginDash

_MARKER = "_margindash_instrumentation"
# Extra keyword arguments a caller may pass to a wrapped `create`; stripped before the provider.
CALL_ARGUMENTS = ("margindash_customer_id", "margindash_feature", "margindash_metadata")
# Keys whose string values are protocol words, not prompt text, and so are not counted as chars.
_NON_TEXT_KEYS = frozenset({"role", "type", "id", "name", "model", "tool_call_id", "media_type"})


@dataclass
class Usage:
    """Token counts observed for one provider call (None when the provider did not say)."""

    model: str | None = None
    response_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    completion_chars: int = 0


class Endpoint(Protocol):
    """How one provider method's requests, responses and stream items are read."""

    provider: str

    def prepare(self, kwargs: dict[str, Any]) -> None:
        """Adjust the call's arguments before it is made (e.g. ask for usage in streams)."""

    def usage_of(self, response: Any) -> Usage | None:
        """Usage of a complete response, or None when the object is not one this reads."""

    def observe(self, item: Any, usage: Usage) -> None:
        """Fold one stream item into `usage`."""

    def prompt_chars(self, kwargs: dict[str, Any]) -> int:
        """Characters of prompt text in the call's arguments (only counted, never sent)."""


@dataclass
class _Installation:
    tracker: MarginDash
    patched: list[tuple[Any, str]]


def instrument(
    client: Any, tracker: MarginDash, targets: list[tuple[tuple[str, ...], Endpoint]]
) -> Any:
    """Wrap `create` on each resource path of `client`; calling again only swaps the tracker."""
    installed: _Installation | None = getattr(client, _MARKER, None)
    if installed is not None:
        installed.tracker = tracker
        return client
    installation = _Installation(tracker=tracker, patched=[])
    for path, endpoint in targets:
        resource = _resolve(client, path)
        original = getattr(resource, "create", None) if resource is not None else None
        if original is None:
            continue
        wrapper = _wrap(original, endpoint, installation)
        setattr(resource, "create", wrapper)  # noqa: B010 - an instance attribute shadows the method
        installation.patched.append((resource, "create"))
    setattr(client, _MARKER, installation)
    return client


def uninstrument(client: Any) -> Any:
    """Remove what `instrument` added; a client that was never wrapped is left as it is."""
    installation: _Installation | None = getattr(client, _MARKER, None)
    if installation is None:
        return client
    for resource, name in installation.patched:
        resource.__dict__.pop(name, None)
    delattr(client, _MARKER)
    return client


def _resolve(client: Any, path: tuple[str, ...]) -> Any:
    node = client
    for name in path:
        node = getattr(node, name, None)
        if node is None:
            return None
    return node


def _wrap(original: Callable[..., Any], endpoint: Endpoint, installation: _Installation) -> Any:
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def acreate(*args: Any, **kwargs: Any) -> Any:
            call = _Call.start(endpoint, installation, kwargs)
            result = await original(*args, **kwargs)
            return call.finish(result, asynchronous=True)

        return acreate

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call = _Call.start(endpoint, installation, kwargs)
        result = original(*args, **kwargs)
        # Async clients' `create` is a plain function returning a coroutine (behind a decorator).
        if inspect.isawaitable(result):
            return _finish_later(call, result)
        return call.finish(result, asynchronous=False)

    return create


async def _finish_later(call: _Call, pending: Awaitable[Any]) -> Any:
    return call.finish(await pending, asynchronous=True)


class _Call:
    """One wrapped provider call: attribution taken before it, usage reported after it."""

    def __init__(
        self,
        endpoint: Endpoint,
        installation: _Installation,
        kwargs: dict[str, Any],
        attribution: dict[str, Any],
    ) -> None:
        self.endpoint = endpoint
        self.installation = installation
        self.kwargs = kwargs
        self.attribution = attribution
        self.reported = False

    @classmethod
    def start(
        cls, endpoint: Endpoint, installation: _Installation, kwargs: dict[str, Any]
    ) -> _Call:
        """Strip margindash's own arguments, resolve attribution and prepare the request."""
        explicit = {name: kwargs.pop(name, None) for name in CALL_ARGUMENTS}
        call = cls(endpoint, installation, kwargs, explicit)
        if installation.tracker.enabled:
            try:
                endpoint.prepare(kwargs)
            except Exception as exc:
                installation.tracker._internal_error(exc, "instrumentation")
        return call

    def finish(self, result: Any, *, asynchronous: bool) -> Any:
        """Report a complete response now, or hand back a stream that reports when it ends."""
        if not self.installation.tracker.enabled:
            return result
        try:
            if self.kwargs.get("stream") is True:
                if asynchronous and hasattr(result, "__aiter__"):
                    return ObservedAsyncStream(result, self)
                if not asynchronous and hasattr(result, "__iter__"):
                    return ObservedStream(result, self)
                return result
            usage = self.endpoint.usage_of(result)
            if usage is not None:
                self.report(usage)
        except Exception as exc:
            self.installation.tracker._internal_error(exc, "instrumentation")
        return result

    def observe(self, item: Any, usage: Usage) -> None:
        """Fold a stream item into usage; an SDK error here never interrupts the stream."""
        try:
            self.endpoint.observe(item, usage)
        except Exception as exc:
            self.installation.tracker._internal_error(exc, "instrumentation")

    def report(self, usage: Usage) -> None:
        """Send one usage event for this call, estimating from characters if tokens are missing."""
        if self.reported or usage.model is None:
            return
        self.reported = True
        tracker = self.installation.tracker
        context = current_attribution()
        explicit = self.attribution
        metadata = {**(context.metadata or {}), **(explicit["margindash_metadata"] or {})}
        counted = usage.prompt_tokens is not None and usage.completion_tokens is not None
        tracker.track(
            model=usage.model,
            provider=self.endpoint.provider,
            customer_id=explicit["margindash_customer_id"] or context.customer_id,
            feature=explicit["margindash_feature"] or context.feature,
            request_id=usage.response_id,
            prompt_tokens=usage.prompt_tokens if counted else None,
            completion_tokens=usage.completion_tokens if counted else None,
            cached_tokens=usage.cached_tokens if counted else None,
            cache_write_tokens=usage.cache_write_tokens if counted else None,
            reasoning_tokens=usage.reasoning_tokens if counted else None,
            prompt_chars=None if counted else self.endpoint.prompt_chars(self.kwargs),
            completion_chars=None if counted else usage.completion_chars,
            metadata=metadata or None,
        )

    def close_stream(self, usage: Usage) -> None:
        """Report a stream's usage once, whether it ended, was closed or was abandoned."""
        try:
            self.report(usage)
        except Exception as exc:
            self.installation.tracker._internal_error(exc, "instrumentation")


class ObservedStream:
    """A provider stream passed through item by item, reporting usage when it ends."""

    def __init__(self, inner: Any, call: _Call) -> None:
        self._inner = inner
        self._call = call
        self._usage = Usage()
        self._items = self._observe()

    def _observe(self) -> Generator[Any, None, None]:
        try:
            for item in self._inner:
                self._call.observe(item, self._usage)
                yield item
        finally:
            self._call.close_stream(self._usage)

    def __iter__(self) -> Iterator[Any]:
        return self._items

    def __next__(self) -> Any:
        return next(self._items)

    def __enter__(self) -> ObservedStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the provider stream and report what was seen."""
        self._items.close()
        self._call.close_stream(self._usage)
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ObservedAsyncStream:
    """The async twin of ObservedStream."""

    def __init__(self, inner: Any, call: _Call) -> None:
        self._inner = inner
        self._call = call
        self._usage = Usage()
        self._items = self._observe()

    async def _observe(self) -> AsyncGenerator[Any, None]:
        try:
            async for item in self._inner:
                self._call.observe(item, self._usage)
                yield item
        finally:
            self._call.close_stream(self._usage)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._items

    async def __anext__(self) -> Any:
        return await self._items.__anext__()

    async def __aenter__(self) -> ObservedAsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the provider stream and report what was seen."""
        await self._items.aclose()
        self._call.close_stream(self._usage)
        await self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def count_text_chars(value: Any, key: str | None = None) -> int:
    """Length of the prompt text in a request argument, skipping protocol words like roles."""
    if isinstance(value, str):
        return 0 if key in _NON_TEXT_KEYS else len(value)
    if isinstance(value, dict):
        return sum(count_text_chars(item, name) for name, item in value.items())
    if isinstance(value, list | tuple):
        return sum(count_text_chars(item, key) for item in value)
    return 0


def field(obj: Any, *path: str) -> Any:
    """Follow attributes (or dict keys) along `path`; None as soon as one is missing."""
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj
