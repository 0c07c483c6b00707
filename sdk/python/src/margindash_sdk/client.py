"""The public client: `track`, `record_revenue`, `flush`, `shutdown` and `guarded_call`."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from . import _guard
from ._version import __version__
from .budgets import Blocklist, BudgetExceeded
from .config import Options, resolve_options
from .rollout import in_rollout
from .transport import Transport
from .worker import BatchWorker, Stats

logger = logging.getLogger("margindash_sdk")

T = TypeVar("T")
USER_AGENT = f"margindash-python/{__version__}"
_NO_STATS = Stats(
    queued=0, sent=0, duplicates=0, dropped=0, failed=0, rejected=0, pending=0, errors=0
)


class MarginDash:
    """Reports LLM usage and revenue to a margindash server without ever breaking the caller."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        enabled: bool | None = None,
        rollout_percent: float | None = None,
        rollout_customers: frozenset[str] | set[str] | list[str] | None = None,
        max_queue_size: int | None = None,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        max_retries: int | None = None,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        timeout: float | None = None,
        shutdown_timeout: float | None = None,
        blocklist_ttl: float | None = None,
        blocklist_timeout: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        explicit = {key: value for key, value in locals().items() if key not in {"self", "environ"}}
        self.options: Options = resolve_options(explicit, environ)
        self._errors = 0
        self._percent = self.options.effective_rollout_percent
        self._allowlist = self.options.rollout_customers
        self._worker: BatchWorker | None = None
        self._blocklist: Blocklist | None = None
        if self.options.enabled and not self.options.api_key:
            logger.warning("margindash: no API key (MARGINDASH_API_KEY); reporting is disabled")
        if not (self.options.enabled and self.options.api_key):
            return
        options = self.options
        self._worker = BatchWorker(options, lambda: Transport(options, user_agent=USER_AGENT))
        self._blocklist = Blocklist(options, user_agent=USER_AGENT)
        ref = weakref.ref(self)
        atexit.register(_shutdown_at_exit, ref)
        os.register_at_fork(after_in_child=lambda: _restart_in_child(ref))

    @property
    def enabled(self) -> bool:
        """Whether calls report anything (kill switch on, a key present, not shut down)."""
        return self._worker is not None and not self._worker.closed

    @property
    def stats(self) -> Stats:
        """Cumulative counters: queued, sent, duplicates, dropped, failed, rejected, pending."""
        if self._worker is None:
            return dataclasses.replace(_NO_STATS, errors=self._errors)
        stats = self._worker.stats()
        return dataclasses.replace(stats, errors=stats.errors + self._errors)

    def in_rollout(self, customer_id: str | None) -> bool:
        """Whether this customer's calls are reported under the canary settings."""
        return in_rollout(customer_id, percent=self._percent, allowlist=self._allowlist)

    def track(
        self,
        *,
        model: str,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        customer_id: str | None = None,
        feature: str | None = None,
        request_id: str | None = None,
        cached_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        revenue_amount_cents: int | None = None,
        timestamp: datetime | str | None = None,
        provider: str | None = None,
        metadata: Mapping[str, str] | None = None,
        prompt_chars: int | None = None,
        completion_chars: int | None = None,
    ) -> str | None:
        """Queue one usage event; returns its request_id, or None when it was not queued."""
        worker = self._worker
        if worker is None or worker.closed:
            return None
        try:
            if self._percent < 100.0 and not self.in_rollout(customer_id):
                return None
            rid = request_id or uuid.uuid4().hex
            event: dict[str, Any] = {
                "request_id": rid,
                "model_name": model,
                "timestamp": time.time() if timestamp is None else _rfc3339(timestamp),
            }
            # Spelled out, not a dict filtered in a loop: track() runs on every LLM call of the
            # host app, and this form costs a fraction of the loop (fields left out, not null).
            if customer_id is not None:
                event["customer_id"] = customer_id
            if prompt_tokens is not None:
                event["prompt_tokens"] = prompt_tokens
            if completion_tokens is not None:
                event["completion_tokens"] = completion_tokens
            if feature is not None:
                event["feature"] = feature
            if cached_tokens is not None:
                event["cached_tokens"] = cached_tokens
            if cache_write_tokens is not None:
                event["cache_write_tokens"] = cache_write_tokens
            if reasoning_tokens is not None:
                event["reasoning_tokens"] = reasoning_tokens
            if revenue_amount_cents is not None:
                event["revenue_amount_cents"] = revenue_amount_cents
            if provider is not None:
                event["provider"] = provider
            if metadata:
                event["metadata"] = dict(metadata)
            if prompt_chars is not None:
                event["prompt_chars"] = prompt_chars
            if completion_chars is not None:
                event["completion_chars"] = completion_chars
            return rid if worker.submit("usage", event) else None
        except Exception as exc:
            self._internal_error(exc, "track")
            return None

    def record_revenue(
        self,
        *,
        revenue_id: str,
        customer_id: str,
        amount: str | Decimal | int | None = None,
        amount_cents: int | None = None,
        currency: str = "usd",
        month: str | date | None = None,
        period_start: str | date | None = None,
        period_end: str | date | None = None,
    ) -> str | None:
        """Queue revenue for a customer (`POST /v1/revenue`); returns revenue_id when queued."""
        worker = self._worker
        if worker is None or worker.closed:
            return None
        try:
            if self._percent < 100.0 and not self.in_rollout(customer_id):
                return None
            entry: dict[str, Any] = {
                "revenue_id": revenue_id,
                "customer_id": customer_id,
                "currency": currency,
            }
            if amount is not None:
                entry["amount"] = str(amount)
            if amount_cents is not None:
                entry["amount_cents"] = amount_cents
            if month is not None:
                entry["month"] = month.strftime("%Y-%m") if isinstance(month, date) else month
            if period_start is not None:
                entry["period_start"] = str(period_start)
            if period_end is not None:
                entry["period_end"] = str(period_end)
            return revenue_id if worker.submit("revenue", entry) else None
        except Exception as exc:
            self._internal_error(exc, "record_revenue")
            return None

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything queued so far; True when all of it was settled within `timeout`."""
        if self._worker is None:
            return True
        try:
            return self._worker.flush(timeout)
        except Exception as exc:
            self._internal_error(exc, "flush")
            return False

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within `timeout` (default: shutdown_timeout) and stop; later calls are no-ops."""
        if self._worker is None:
            return True
        try:
            done = self._worker.shutdown(
                self.options.shutdown_timeout if timeout is None else timeout
            )
            if self._blocklist is not None:
                self._blocklist.close()
            return done
        except Exception as exc:
            self._internal_error(exc, "shutdown")
            return False

    def guarded_call(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        customer_id: str | None = None,
        feature: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Call `fn(*args, **kwargs)` unless a blocking budget covers it: then BudgetExceeded.

        `customer_id` and `feature` are consumed here; a `model` keyword is checked against
        model budgets (under the name the server books it as) and still passed on to `fn`.
        """
        model = kwargs.get("model")
        rule = self._blocking_rule(
            customer_id=customer_id,
            feature=feature,
            model=model if isinstance(model, str) else None,
        )
        if rule is not None:
            raise BudgetExceeded(
                scope_type=rule[0], value=rule[1], customer_id=customer_id, feature=feature
            )
        # Outside the guard on purpose: the app's own exceptions must reach it unchanged.
        return fn(*args, **kwargs)

    def _blocking_rule(
        self, *, customer_id: str | None, feature: str | None, model: str | None
    ) -> tuple[str, str] | None:
        if self._blocklist is None or not self.enabled:
            return None
        try:
            if self._percent < 100.0 and not self.in_rollout(customer_id):
                return None
            return self._blocklist.blocking_rule(
                customer_id=customer_id, feature=feature, model=model
            )
        except Exception as exc:
            self._internal_error(exc, "guarded_call")
            return None

    def _internal_error(self, exc: Exception, where: str) -> None:
        self._errors += 1
        _guard.swallow(exc, where)

    def _restart_in_child(self) -> None:
        if self._worker is not None and not self._worker.closed:
            self._worker.restart_after_fork()
        if self._blocklist is not None:
            self._blocklist.restart_after_fork()


def _rfc3339(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _shutdown_at_exit(ref: weakref.ref[MarginDash]) -> None:
    client = ref()
    if client is not None:
        client.shutdown()


def _restart_in_child(ref: weakref.ref[MarginDash]) -> None:
    client = ref()
    if client is None:
        return
    try:
        client._restart_in_child()
    except Exception as exc:
        client._internal_error(exc, "fork")
