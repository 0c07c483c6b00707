"""The budget guard: what exhausted `block` budgets stop, for SDKs to refuse calls up front.

The evaluator marks a block budget `blocked_until` the end of its period when it uses its
limit; the list is those marks still in force. Each process keeps it in memory and rebuilds
it when a budget changes here, when a mark runs out, or after `ttl` seconds, which bounds how
long a mark made by another process takes to show.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from margindash.budgets.spec import Scope
from margindash.db.tables import budgets

DEFAULT_TTL = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class BlockRule:
    """One exhausted block budget: what it stops and until when."""

    budget_id: str
    name: str
    scope: Scope
    until: datetime

    def stops(self, *, customer_id: str | None, feature: str | None, model: str | None) -> bool:
        """Whether a call with these attributes falls in the blocked scope."""
        scope = self.scope
        return all(
            wanted is None or wanted == given
            for wanted, given in (
                (scope.customer_id, customer_id),
                (scope.feature, feature),
                (scope.model, model),
            )
        )


@dataclass(frozen=True, slots=True)
class Blocklist:
    """The rules in force, and a version that changes exactly when they do."""

    version: str
    rules: tuple[BlockRule, ...]
    expires_at: datetime

    def blocking(
        self, *, customer_id: str | None, feature: str | None, model: str | None = None
    ) -> list[BlockRule]:
        """The rules that stop a call by this customer, feature and model."""
        return [
            rule
            for rule in self.rules
            if rule.stops(customer_id=customer_id, feature=feature, model=model)
        ]


def load_blocklist(
    engine: Engine, *, org_id: str, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> Blocklist:
    """The org's block rules in force at `now`, read from the budgets table."""
    b = budgets
    with engine.connect() as conn:
        rows = conn.execute(
            select(b).where(b.c.org_id == org_id, b.c.action == "block", b.c.blocked_until > now)
        ).all()
    rules = tuple(
        sorted(
            (
                BlockRule(
                    budget_id=row.id,
                    name=row.name,
                    scope=Scope(row.scope_type, row.customer_id, row.feature, row.model),
                    until=row.blocked_until,
                )
                for row in rows
            ),
            key=lambda rule: rule.budget_id,
        )
    )
    expires_at = min([now + ttl, *(rule.until for rule in rules)])
    return Blocklist(version=_version(rules), rules=rules, expires_at=expires_at)


def _version(rules: tuple[BlockRule, ...]) -> str:
    # A digest of the content, so every process serves the same version for the same list.
    text = "\n".join(f"{r.budget_id}\t{r.scope.type}\t{r.scope.value}" for r in rules)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class BudgetGuard:
    """Per-process cache of each org's blocklist."""

    def __init__(self, engine: Engine, *, ttl: timedelta = DEFAULT_TTL):
        self.engine = engine
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, Blocklist] = {}

    def blocklist(self, org_id: str, *, now: datetime | None = None) -> Blocklist:
        """The org's blocklist, from memory while it is fresh."""
        now = now or datetime.now(UTC)
        with self._lock:
            cached = self._cache.get(org_id)
        if cached is not None and now < cached.expires_at:
            return cached
        fresh = load_blocklist(self.engine, org_id=org_id, now=now, ttl=self.ttl)
        with self._lock:
            self._cache[org_id] = fresh
        return fresh

    def invalidate(self, org_id: str) -> None:
        """Forget the org's list (a budget changed, or one started blocking)."""
        with self._lock:
            self._cache.pop(org_id, None)
