"""Who a provider call is for, carried through `contextvars` to the provider wrappers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Attribution:
    """The customer and feature that LLM calls in the current context are billed to."""

    customer_id: str | None = None
    feature: str | None = None
    metadata: dict[str, str] | None = None


_NONE = Attribution()
_current: ContextVar[Attribution | None] = ContextVar("margindash_attribution", default=None)


def current_attribution() -> Attribution:
    """The attribution set by the innermost `margindash_context`, or an empty one."""
    return _current.get() or _NONE


@contextmanager
def margindash_context(
    *,
    customer_id: str | None = None,
    feature: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Iterator[Attribution]:
    """Attribute provider calls inside the block; unset fields inherit from an outer block."""
    outer = current_attribution()
    merged = Attribution(
        customer_id=customer_id if customer_id is not None else outer.customer_id,
        feature=feature if feature is not None else outer.feature,
        metadata={**(outer.metadata or {}), **metadata} if metadata else outer.metadata,
    )
    token = _current.set(merged)
    try:
        yield merged
    finally:
        _current.reset(token)
