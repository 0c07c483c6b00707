"""Where a budget stands in its current period: spent, used %, projection and state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import Connection, Engine

from margindash.budgets.periods import BudgetPeriod, budget_period
from margindash.budgets.service import Budget
from margindash.budgets.spend import spent_nanos
from margindash.orgs.service import Org

HUNDRED = Decimal(100)
# Early in a period a straight-line projection is mostly noise (one busy hour on the 1st
# "projects" a month at 700x); below this share of the period none is made.
PROJECTION_MIN_ELAPSED = Decimal("0.1")
_CENT = Decimal("0.01")

OK, WARNING, CRITICAL, EXCEEDED, BLOCKED = "ok", "warning", "critical", "exceeded", "blocked"


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A budget's figures for the period containing the moment it was evaluated."""

    budget: Budget
    period: BudgetPeriod
    spent_nanos: int
    projected_nanos: int | None

    @property
    def limit_nanos(self) -> int:
        return self.budget.spec.limit_nanos

    @property
    def used_pct(self) -> float:
        """Spent as a percentage of the limit, rounded to 2 decimals."""
        exact = Decimal(self.spent_nanos) * HUNDRED / Decimal(self.limit_nanos)
        return float(exact.quantize(_CENT, rounding=ROUND_HALF_EVEN))

    def reached(self, threshold: Decimal) -> bool:
        """Whether spending has reached `threshold` percent of the limit (exact)."""
        return Decimal(self.spent_nanos) * HUNDRED >= threshold * self.limit_nanos

    @property
    def exhausted(self) -> bool:
        return self.spent_nanos >= self.limit_nanos

    @property
    def blocking(self) -> bool:
        """A `block` budget that has used its whole limit stops calls until the period ends."""
        return self.budget.spec.action == "block" and self.exhausted

    @property
    def projected_to_exceed(self) -> bool:
        return self.projected_nanos is not None and self.projected_nanos > self.limit_nanos

    @property
    def alert_thresholds(self) -> tuple[Decimal, ...]:
        """The percentages that alert; a block budget always says when it starts blocking."""
        thresholds = self.budget.spec.thresholds
        if self.budget.spec.action == "block" and HUNDRED not in thresholds:
            return tuple(sorted((*thresholds, HUNDRED)))
        return thresholds

    @property
    def state(self) -> str:
        """`ok`, `warning`, `critical` (the highest threshold below 100%), `exceeded`, `blocked`."""
        if self.exhausted:
            return BLOCKED if self.budget.spec.action == "block" else EXCEEDED
        reached = [t for t in self.budget.spec.thresholds if t < HUNDRED and self.reached(t)]
        if not reached:
            return OK
        return CRITICAL if reached[-1] == self._top_warning() else WARNING

    def severity(self, threshold: Decimal) -> str:
        """How loud an alert at `threshold` is."""
        if threshold >= HUNDRED:
            return BLOCKED if self.budget.spec.action == "block" else EXCEEDED
        return CRITICAL if threshold == self._top_warning() else WARNING

    def _top_warning(self) -> Decimal | None:
        below = [t for t in self.budget.spec.thresholds if t < HUNDRED]
        return below[-1] if below else None


def projected_nanos(spent: int, period: BudgetPeriod, now: datetime) -> int | None:
    """End-of-period spend if spending goes on at the pace so far (None: too early to say)."""
    fraction = period.elapsed_fraction(now)
    if fraction < PROJECTION_MIN_ELAPSED:
        return None
    return int((Decimal(spent) / fraction).to_integral_value(rounding=ROUND_HALF_EVEN))


def budget_status(conn: Connection, budget: Budget, *, org: Org, now: datetime) -> BudgetStatus:
    """The budget's figures for its period containing `now`."""
    period = budget_period(budget.spec.period, zone=org.zone, now=now)
    spent = spent_nanos(
        conn,
        org_id=budget.org_id,
        scope=budget.spec.scope,
        first_day=period.first_day,
        last_day=period.last_day,
    )
    return BudgetStatus(budget, period, spent, projected_nanos(spent, period, now))


def budget_statuses(
    engine: Engine, *, org: Org, budgets: Sequence[Budget], now: datetime
) -> list[BudgetStatus]:
    """Figures for several budgets of one org, read on one connection."""
    with engine.connect() as conn:
        return [budget_status(conn, budget, org=org, now=now) for budget in budgets]
