"""Server-rendered SVG charts: the geometry is computed here, the markup is in the templates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from margindash.web.templating import currency_symbol, money

WIDTH, HEIGHT = 760, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 30, 14, 30
_TARGET_TICKS = 4
_MAX_X_LABELS = 7


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One value of a series: where it is drawn and what its tooltip says."""

    x: float
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """A line (and the area under it) with its points."""

    name: str
    css: str
    line: str
    area: str
    points: tuple[ChartPoint, ...]


@dataclass(frozen=True, slots=True)
class LineChart:
    """A line chart over labelled buckets (days or months)."""

    width: int
    height: int
    series: tuple[ChartSeries, ...]
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]
    baseline: float
    plot_left: int
    plot_right: int
    summary: str


@dataclass(frozen=True, slots=True)
class Bucket:
    """A chart column: its axis label, its tooltip title, and one value per series."""

    label: str
    title: str
    values: tuple[Decimal, ...]


def nice_step(span: Decimal, ticks: int = _TARGET_TICKS) -> Decimal:
    """A round step (1, 2, 2.5 or 5 times a power of ten) that cuts `span` in about `ticks`."""
    if span <= 0:
        return Decimal(1)
    raw = span / ticks
    magnitude = Decimal(10) ** math.floor(math.log10(raw))
    for multiple in ("1", "2", "2.5", "5", "10"):
        step = Decimal(multiple) * magnitude
        if step >= raw:
            return step
    return 10 * magnitude


def axis_label(value: Decimal, currency: str) -> str:
    """A compact amount for an axis: `$0`, `$250`, `$1.5k`, `$12k`, `$1.2M`."""
    sign = "\u2212" if value < 0 else ""
    amount = abs(value)
    symbol = currency_symbol(currency)
    for size, suffix in ((Decimal(1_000_000), "M"), (Decimal(1_000), "k")):
        if amount >= size:
            return f"{sign}{symbol}{_trim(amount / size)}{suffix}"
    return f"{sign}{symbol}{_trim(amount)}"


def _trim(value: Decimal) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def line_chart(
    buckets: Sequence[Bucket], series: Sequence[tuple[str, str]], *, currency: str
) -> LineChart | None:
    """Lines for each (name, css class) in `series` over the buckets; None without buckets."""
    if not buckets:
        return None
    values = [v for b in buckets for v in b.values]
    low = min(Decimal(0), *values)
    high = max(Decimal(0), *values)
    step = nice_step(high - low)
    bottom = (low / step).to_integral_value(rounding="ROUND_FLOOR") * step
    top = max((high / step).to_integral_value(rounding="ROUND_CEILING") * step, bottom + step)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def x_at(i: int) -> float:
        if len(buckets) == 1:
            return _LEFT + plot_w / 2
        return round(_LEFT + plot_w * i / (len(buckets) - 1), 1)

    def y_at(value: Decimal) -> float:
        return round(_TOP + plot_h * float((top - value) / (top - bottom)), 1)

    drawn = []
    for index, (name, css) in enumerate(series):
        points = tuple(
            ChartPoint(
                x_at(i),
                y_at(b.values[index]),
                f"{b.title}: {name} {money(b.values[index], currency)}",
            )
            for i, b in enumerate(buckets)
        )
        line = "M" + " L".join(f"{p.x},{p.y}" for p in points)
        base = y_at(max(bottom, Decimal(0)))
        area = f"{line} L{points[-1].x},{base} L{points[0].x},{base} Z"
        drawn.append(ChartSeries(name, css, line, area, points))
    ticks = []
    tick = bottom
    while tick <= top:
        ticks.append((y_at(tick), axis_label(tick, currency)))
        tick += step
    every = max(1, math.ceil(len(buckets) / _MAX_X_LABELS))
    x_ticks = tuple((x_at(i), b.label) for i, b in enumerate(buckets) if i % every == 0)
    names = " and ".join(name for name, _css in series)
    return LineChart(
        width=WIDTH,
        height=HEIGHT,
        series=tuple(drawn),
        y_ticks=tuple(ticks),
        x_ticks=x_ticks,
        baseline=y_at(max(bottom, Decimal(0))),
        plot_left=_LEFT,
        plot_right=WIDTH - _RIGHT,
        summary=f"{names.capitalize()}, {buckets[0].title} to {buckets[-1].title}",
    )
