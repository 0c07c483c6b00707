"""What a benchmark returns: figures with their same-run baselines, targets and notes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue: a bound on the figure itself or on its ratio to the baseline."""

    bound: float
    at_least: bool  # True: figure >= bound; False: figure <= bound
    on_ratio: bool = False

    def met(self, value: float, ratio: float | None) -> bool | None:
        measured = ratio if self.on_ratio else value
        if measured is None:
            return None
        return measured >= self.bound if self.at_least else measured <= self.bound

    def describe(self, unit: str) -> str:
        sign = "≥" if self.at_least else "≤"
        if self.on_ratio:
            return f"{sign} {self.bound:.0%} of baseline"
        return f"{sign} {format_value(self.bound, unit)}"


@dataclass(slots=True)
class Figure:
    """One measured quantity: its value per repetition and its baseline's, from the same run."""

    name: str
    unit: str
    values: list[float]
    baseline_name: str = ""
    baseline_values: list[float] = field(default_factory=list)
    target: Target | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def baseline(self) -> float | None:
        return statistics.median(self.baseline_values) if self.baseline_values else None

    @property
    def ratio(self) -> float | None:
        baseline = self.baseline
        if not baseline or not self.values:
            return None
        return self.median / baseline

    @property
    def met(self) -> bool | None:
        if self.target is None or not self.values:
            return None
        return self.target.met(self.median, self.ratio)


@dataclass(slots=True)
class Section:
    """The outcome of one benchmark function."""

    title: str
    method: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after


def format_value(value: float | None, unit: str) -> str:
    """A figure for the tables: thousands separators, sensible precision, its unit."""
    if value is None or value != value:
        return "-"
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "µs":
        return f"{value:,.0f} µs"
    if unit == "MiB":
        return f"{value:,.1f} MiB"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.2f} {unit}"


def spread(values: list[float], unit: str) -> str:
    """min .. max over the repetitions."""
    if len(values) < 2:
        return ""
    return f"{format_value(min(values), unit)} .. {format_value(max(values), unit)}"
