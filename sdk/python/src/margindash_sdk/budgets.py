"""The budget blocklist: which customers, features or models are over a blocking budget."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from .config import Options

logger = logging.getLogger("margindash_sdk")

Rule = tuple[str, str]
# How long the server's answer to "what model is this name?" is kept: names change meaning only
# when the org adds an alias or the price catalogue learns a model.
RESOLVED_TTL = 300.0
_MAX_RESOLVED = 1000


class BudgetExceeded(Exception):
    """Raised by `guarded_call` instead of calling the provider when a budget blocks the call."""

    def __init__(
        self,
        *,
        scope_type: str,
        value: str,
        customer_id: str | None,
        feature: str | None,
    ) -> None:
        super().__init__(f"margindash budget exceeded for {scope_type} {value!r}")
        self.scope_type = scope_type
        self.value = value
        self.customer_id = customer_id
        self.feature = feature


class Blocklist:
    """A TTL cache of `GET /v1/budgets/blocklist`, refreshed with If-None-Match; fails open."""

    def __init__(self, options: Options, *, user_agent: str) -> None:
        self._options = options
        self._user_agent = user_agent
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._rules: frozenset[Rule] = frozenset()
        self._booked: dict[str, tuple[str, float]] = {}  # model name -> (booked name, until)
        self._etag: str | None = None
        self._fetched_at = float("-inf")
        self.version: Any = None
        self._warned = False

    def restart_after_fork(self) -> None:
        """Drop the parent's lock and connections in a forked child."""
        self._reset()

    def blocking_rule(
        self, *, customer_id: str | None, feature: str | None, model: str | None
    ) -> Rule | None:
        """The first rule that blocks this call, or None."""
        rules = self._current_rules()
        if not rules:
            return None
        candidates: list[Rule] = [("org", "*")]
        if customer_id is not None:
            candidates.append(("customer", customer_id))
        if feature is not None:
            candidates.append(("feature", feature))
        if customer_id is not None and feature is not None:
            candidates.append(("customer_feature", f"{customer_id}:{feature}"))
        if model is not None and any(kind == "model" for kind, _ in rules):
            candidates.append(("model", self._booked_model(model, rules)))
        return next((rule for rule in candidates if rule in rules), None)

    def _booked_model(self, model: str, rules: frozenset[Rule]) -> str:
        """The name the server books `model` under, as model budgets name it.

        `gpt-4o-mini-2024-07-18` and `openai/gpt-4o-mini` are `gpt-4o-mini` there, through the
        price catalogue and the org's aliases, which the SDK does not have: a name that is not
        already a blocked model (trimmed, in lower case) is asked of `GET /v1/budgets/check`
        once and remembered. Without an answer the name is only trimmed and lower-cased.
        """
        local = model.strip().lower()
        if ("model", local) in rules:
            return local
        now = time.monotonic()
        known = self._booked.get(model)
        if known is not None and now < known[1]:
            return known[0]
        booked = self._ask_booked_model(model)
        if len(self._booked) >= _MAX_RESOLVED:
            self._booked.clear()
        # A failed question is asked again only when the blocklist would be fetched again.
        ttl = RESOLVED_TTL if booked is not None else self._options.blocklist_ttl
        self._booked[model] = (booked or local, now + ttl)
        return booked or local

    def _ask_booked_model(self, model: str) -> str | None:
        try:
            response = self._client().get("budgets/check", params={"model": model})
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            booked = response.json().get("model")
        except (ValueError, AttributeError):
            return None
        return booked if isinstance(booked, str) else None  # an older server does not say

    def close(self) -> None:
        """Close pooled connections."""
        if self._http is not None:
            self._http.close()

    def _current_rules(self) -> frozenset[Rule]:
        if time.monotonic() - self._fetched_at < self._options.blocklist_ttl:
            return self._rules
        # One thread refreshes; the others go on with the list they have rather than wait.
        if not self._lock.acquire(blocking=False):
            return self._rules
        try:
            self._refresh()
        finally:
            self._lock.release()
        return self._rules

    def _refresh(self) -> None:
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            response = self._client().get("budgets/blocklist", headers=headers)
        except httpx.HTTPError as exc:
            self._fail_open(f"blocklist unreachable ({type(exc).__name__})")
            return
        if response.status_code == 304:
            self._fetched_at = time.monotonic()
            return
        if response.status_code != 200:
            self._fail_open(f"blocklist answered HTTP {response.status_code}")
            return
        try:
            body = response.json()
            rules = frozenset(_parse_rules(body.get("blocked", [])))
        except (ValueError, AttributeError, TypeError):
            self._fail_open("blocklist body was not the documented shape")
            return
        self._rules = rules
        self.version = body.get("version")
        self._etag = response.headers.get("ETag")
        self._fetched_at = time.monotonic()

    def _fail_open(self, reason: str) -> None:
        # Fail open: an unreachable budget service must never stop the product from working.
        self._rules = frozenset()
        self._etag = None
        self._fetched_at = time.monotonic()
        if not self._warned:
            self._warned = True
            logger.warning(
                "margindash: %s; budget blocks are not enforced until it answers", reason
            )

    def _client(self) -> httpx.Client:
        if self._http is None:
            headers = {"User-Agent": self._user_agent}
            if self._options.api_key:
                headers["Authorization"] = f"Bearer {self._options.api_key}"
            self._http = httpx.Client(
                base_url=self._options.base_url,
                headers=headers,
                timeout=self._options.blocklist_timeout,
            )
        return self._http


def _parse_rules(blocked: list[Any]) -> list[Rule]:
    rules: list[Rule] = []
    for entry in blocked:
        kind, value = entry["type"], entry.get("value")
        if kind == "org":
            rules.append(("org", "*"))
        elif kind == "customer_feature" and "customer_id" in entry and "feature" in entry:
            rules.append((kind, f"{entry['customer_id']}:{entry['feature']}"))
        elif value is not None:
            rules.append((str(kind), str(value)))
    return rules
