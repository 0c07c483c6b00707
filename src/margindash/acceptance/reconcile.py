"""`margindash reconcile`: a local cost estimate against margindash's numbers, per request or
per customer, and the rollout's canary gate (margin within ±5% of the local estimate).

Difference = (margindash - local) / |local| * 100, in Decimal. A line passes when every measure
it has (cost; with revenue also revenue and margin) is within the tolerance; the run passes when
every line and the totals do. A request or customer margindash does not have fails its line and
counts as 0 in the totals. Where margindash rounds (the API's P&L is in cents), local figures are
rounded the same way before comparing, so rounding alone never fails the gate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from margindash.acceptance.estimates import REQUEST, LocalEstimates, LocalLine
from margindash.acceptance.sources import CustomerFigures, NumbersSource, Period

DEFAULT_TOLERANCE_PCT = Decimal(5)
_PCT_PLACES = _CENTS = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Measure:
    """One amount both ways: local (as compared), margindash's, and the % difference."""

    local: Decimal
    remote: Decimal | None
    diff_pct: Decimal | None  # None: margindash has nothing, or local is 0 and it is not
    within: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "local": amount_text(self.local),
            "margindash": None if self.remote is None else amount_text(self.remote),
            "diff_pct": None if self.diff_pct is None else float(rounded_pct(self.diff_pct)),
            "within": self.within,
        }


def amount_text(value: Decimal) -> str:
    """An amount with every significant digit and at least 2 decimals (`1.00`, `0.000066`)."""
    cents = value.quantize(_CENTS, rounding=ROUND_HALF_EVEN)
    return str(cents) if cents == value else format(value.normalize(), "f")


def rounded_pct(value: Decimal) -> Decimal:
    """A percentage to 2 decimals (half-even), for display."""
    return value.quantize(_PCT_PLACES, rounding=ROUND_HALF_EVEN)


def measure(local: Decimal, remote: Decimal | None, tolerance_pct: Decimal) -> Measure:
    """Compare one amount; within when |difference| ≤ tolerance."""
    if remote is None:
        return Measure(local, None, None, False)
    if local == 0:
        diff = Decimal(0) if remote == 0 else None
    else:
        diff = (remote - local) * 100 / abs(local)
    return Measure(local, remote, diff, diff is not None and abs(diff) <= tolerance_pct)


@dataclass(frozen=True, slots=True)
class ReconciledLine:
    """One line of the local file against margindash."""

    line: int
    key: str
    cost: Measure
    revenue: Measure | None = None
    margin: Measure | None = None
    note: str = ""

    @property
    def measures(self) -> list[Measure]:
        return [m for m in (self.cost, self.revenue, self.margin) if m is not None]

    @property
    def within(self) -> bool:
        return all(m.within for m in self.measures)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"line": self.line, "key": self.key, "cost": self.cost.as_json()}
        if self.revenue is not None and self.margin is not None:
            body.update(revenue=self.revenue.as_json(), margin=self.margin.as_json())
        return body | {"within": self.within, "note": self.note}


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Every line, the totals, and whether the gate holds."""

    kind: str
    source: str
    tolerance_pct: Decimal
    period: tuple[str, str] | None
    lines: list[ReconciledLine]
    totals: ReconciledLine

    @property
    def outside(self) -> list[ReconciledLine]:
        return [line for line in self.lines if not line.within]

    @property
    def within(self) -> bool:
        return not self.outside and self.totals.within

    def as_json(self) -> dict[str, Any]:
        period = None if self.period is None else {"from": self.period[0], "to": self.period[1]}
        return {
            "kind": self.kind,
            "source": self.source,
            "period": period,
            "tolerance_pct": float(self.tolerance_pct),
            "within": self.within,
            "lines_outside": len(self.outside),
            "totals": self.totals.as_json(),
            "lines": [line.as_json() for line in self.lines],
        }


def reconcile(
    *,
    estimates: LocalEstimates,
    source: NumbersSource,
    period: Period,
    tolerance_pct: Decimal = DEFAULT_TOLERANCE_PCT,
) -> Reconciliation:
    """Compare the local estimate with margindash's numbers, line by line and in total."""
    if estimates.kind == REQUEST:
        return _by_request(estimates, source, tolerance_pct)
    return _by_customer(estimates, source, period, tolerance_pct)


def _by_request(
    estimates: LocalEstimates, source: NumbersSource, tolerance: Decimal
) -> Reconciliation:
    costs = source.request_costs([line.key for line in estimates.lines])
    lines = []
    for local in estimates.lines:
        remote = costs.get(local.key)
        note = ""
        if local.key not in costs:
            note = "not found in margindash"
        elif remote is None:
            note = "stored unpriced in margindash (unknown model: add an alias or a price)"
        lines.append(
            ReconciledLine(local.line, local.key, measure(local.cost, remote, tolerance), note=note)
        )
    measured = [line.cost for line in lines]
    totals = ReconciledLine(
        0, "TOTAL", measure(_sum(m.local for m in measured), _sum_remote(measured), tolerance)
    )
    return Reconciliation(REQUEST, source.label, tolerance, None, lines, totals)


def _by_customer(
    estimates: LocalEstimates, source: NumbersSource, period: Period, tolerance: Decimal
) -> Reconciliation:
    numbers = source.customer_numbers(period)
    precision = source.customer_precision
    lines = [
        _customer_line(
            local, numbers.customers.get(local.key), precision, estimates.has_revenue, tolerance
        )
        for local in estimates.lines
    ]
    totals = _customer_totals(lines, estimates.has_revenue, tolerance)
    return Reconciliation(
        estimates.kind, source.label, tolerance, (numbers.date_from, numbers.date_to), lines, totals
    )


def _customer_line(
    local: LocalLine,
    remote: CustomerFigures | None,
    precision: Decimal | None,
    has_revenue: bool,
    tolerance: Decimal,
) -> ReconciledLine:
    def at_precision(amount: Decimal) -> Decimal:
        if precision is None:
            return amount
        return amount.quantize(precision, rounding=ROUND_HALF_EVEN)

    note = "" if remote is not None else "no usage or revenue in margindash for this period"
    cost = measure(at_precision(local.cost), None if remote is None else remote.cost, tolerance)
    if not has_revenue or local.revenue is None:
        return ReconciledLine(local.line, local.key, cost, note=note)
    revenue = measure(
        at_precision(local.revenue), None if remote is None else remote.revenue, tolerance
    )
    margin = measure(
        at_precision(local.revenue - local.cost),
        None if remote is None else remote.margin,
        tolerance,
    )
    return ReconciledLine(local.line, local.key, cost, revenue, margin, note)


def _customer_totals(
    lines: list[ReconciledLine], has_revenue: bool, tolerance: Decimal
) -> ReconciledLine:
    def total(name: str) -> Measure:
        measures = [getattr(line, name) for line in lines]
        return measure(_sum(m.local for m in measures), _sum_remote(measures), tolerance)

    if not has_revenue:
        return ReconciledLine(0, "TOTAL", total("cost"))
    return ReconciledLine(0, "TOTAL", total("cost"), total("revenue"), total("margin"))


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, Decimal(0))


def _sum_remote(measures: Iterable[Measure]) -> Decimal:
    # What margindash lacks counts as 0, so missing data moves the total too.
    return _sum(m.remote for m in measures if m.remote is not None)
