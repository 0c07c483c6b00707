"""What the chosen swaps do to each customer's margin, and how soon they pay for themselves.

Each row's simulated cost is split over its customers in proportion to what each customer's own
token mix costs at the new model's per-token rates (largest remainder, so the parts add up to the
row exactly). Each customer's revenue and cost before are summed from the same rollup rows the
P&L sums, so before and after both add up to the org's totals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from margindash.money import margin_pct, to_nanos
from margindash.orgs.service import Org
from margindash.reports.decisions import customer_action
from margindash.reports.periods import split_range
from margindash.reports.pnl import PnlFilter, negative_month_streaks
from margindash.simulator.repricing import round_div
from margindash.simulator.usage import PeriodUsage

if TYPE_CHECKING:
    from margindash.simulator.simulation import SimulationOptions, SwapRow

# The brief's rule: a customer losing money this many months in a row is one to act on.
ACT_ON_NEGATIVE_MONTHS = 2
_DAYS_PER_4_YEARS, _MONTHS_PER_4_YEARS = 1461, 48
_HUNDREDTH = Decimal("0.01")


@dataclass(slots=True)
class CustomerEffect:
    """One customer's margin over the period, before and after the chosen swaps."""

    customer_id: str
    revenue_nanos: int
    cost_before_nanos: int
    cost_after_nanos: int
    negative_months: int
    watch_pct: float
    swaps: int = 0  # chosen swaps that touch this customer's usage
    monthly_savings_nanos: int = 0

    @property
    def savings_nanos(self) -> int:
        return self.cost_before_nanos - self.cost_after_nanos

    @property
    def margin_before_nanos(self) -> int:
        return self.revenue_nanos - self.cost_before_nanos

    @property
    def margin_after_nanos(self) -> int:
        return self.revenue_nanos - self.cost_after_nanos

    @property
    def margin_pct_before(self) -> float | None:
        return margin_pct(self.revenue_nanos, self.cost_before_nanos)

    @property
    def margin_pct_after(self) -> float | None:
        return margin_pct(self.revenue_nanos, self.cost_after_nanos)

    @property
    def turns_positive(self) -> bool:
        return self.margin_before_nanos < 0 < self.margin_after_nanos

    @property
    def act_on(self) -> bool:
        return self.negative_months >= ACT_ON_NEGATIVE_MONTHS

    def action(self, *, after: bool) -> str:
        margin = self.margin_after_nanos if after else self.margin_before_nanos
        pct = self.margin_pct_after if after else self.margin_pct_before
        return customer_action(margin_nanos=margin, margin_pct=pct, watch_pct=self.watch_pct)


@dataclass(slots=True)
class Roi:
    """Migration cost (hours x rate per swap) against the monthly savings of the swaps."""

    swaps: int
    migration_hours: Decimal | None
    hourly_rate: Decimal | None
    savings_nanos: int
    monthly_savings_nanos: int

    @property
    def cost_per_swap_nanos(self) -> int | None:
        if self.migration_hours is None or self.hourly_rate is None:
            return None
        return to_nanos(self.migration_hours * self.hourly_rate)

    @property
    def migration_cost_nanos(self) -> int | None:
        per_swap = self.cost_per_swap_nanos
        return None if per_swap is None else per_swap * self.swaps

    @property
    def payback_months(self) -> float | None:
        cost = self.migration_cost_nanos
        return None if cost is None else payback(cost, self.monthly_savings_nanos)


def payback(cost_nanos: int, monthly_savings_nanos: int) -> float | None:
    """Months until savings cover a cost (2 decimals); None when nothing is saved."""
    if monthly_savings_nanos <= 0:
        return None
    months = Decimal(cost_nanos) / Decimal(monthly_savings_nanos)
    return float(months.quantize(_HUNDREDTH, rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class MonthlyRate:
    """Turns an amount of a period into a monthly amount: per calendar month for whole
    months, otherwise per average month (365.25 / 12 days)."""

    numerator: int
    denominator: int

    @classmethod
    def of(cls, date_from: date, date_to: date) -> MonthlyRate:
        months, loose = split_range(date_from, date_to)
        if not loose:
            return cls(1, len(months))
        return cls(_DAYS_PER_4_YEARS, _MONTHS_PER_4_YEARS * ((date_to - date_from).days + 1))

    def of_amount(self, nanos: int) -> int:
        return round_div(nanos * self.numerator, self.denominator)


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split a non-negative integer in proportion to non-negative weights, exactly
    (largest remainder; equal parts when every weight is 0)."""
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    weight_sum = sum(weights)
    shares = [divmod(total * weight, weight_sum) for weight in weights]
    parts = [whole for whole, _ in shares]
    remainders = [rest for _, rest in shares]
    left = total - sum(parts)
    # Largest remainders first; equal ones in order (the sort is stable, reversed too).
    for index in sorted(range(len(parts)), key=remainders.__getitem__, reverse=True)[:left]:
        parts[index] += 1
    return parts


def customer_effects(
    engine: Engine,
    *,
    org: Org,
    usage: PeriodUsage,
    rows: list[SwapRow],
    options: SimulationOptions,
    shares: Callable[[SwapRow], list[int]],
    watch_pct: float,
) -> tuple[list[CustomerEffect], Roi]:
    """Every customer's margin before and after the rows' best swaps, and the payback."""
    with engine.connect() as conn:
        # The P&L's own count of consecutive negative months (the brief's rule).
        streaks = negative_month_streaks(
            conn, org.id, options.date_to, PnlFilter(customer_id=options.customer_id)
        )
    effects = {
        customer: CustomerEffect(
            customer_id=customer,
            revenue_nanos=totals.revenue_nanos,
            cost_before_nanos=totals.cost_nanos,
            cost_after_nanos=totals.cost_nanos,
            negative_months=streaks.get(customer, 0),
            watch_pct=watch_pct,
        )
        for customer, totals in usage.customers.items()
    }
    swapped = [row for row in rows if row.best is not None]
    for row in swapped:
        assert row.best is not None
        parts = allocate(row.best.simulated_nanos, shares(row))
        for member, part in zip(row.usage, parts, strict=True):
            effect = effects[member.customer_id]
            effect.cost_after_nanos += part - member.cost_nanos
            effect.swaps += 1
    monthly = MonthlyRate.of(options.date_from, options.date_to)
    for effect in effects.values():
        effect.monthly_savings_nanos = monthly.of_amount(effect.savings_nanos)
    savings = sum(row.savings_nanos for row in swapped)
    roi = Roi(
        swaps=len(swapped),
        migration_hours=options.migration_hours,
        hourly_rate=options.hourly_rate,
        savings_nanos=savings,
        monthly_savings_nanos=monthly.of_amount(savings),
    )
    # Worst margin first, as in the P&L.
    customers = sorted(effects.values(), key=lambda e: (e.margin_before_nanos, e.customer_id))
    return customers, roi
