"""What to do about a customer, from its margin (the brief's decision table)."""

from __future__ import annotations

REPRICE_OR_THROTTLE = "reprice_or_throttle"
MONITOR = "monitor"
HEALTHY = "healthy"


def customer_action(*, margin_nanos: int, margin_pct: float | None, watch_pct: float) -> str:
    """`reprice_or_throttle` when losing money, `monitor` when thin, otherwise `healthy`."""
    if margin_nanos < 0:
        return REPRICE_OR_THROTTLE
    if margin_pct is not None and margin_pct < watch_pct:
        return MONITOR
    return HEALTHY


def negative_streak(negative_months: set[tuple[int, int]], *, year: int, month: int) -> int:
    """How many consecutive months, ending with (year, month), had a negative margin."""
    streak = 0
    while (year, month) in negative_months:
        streak += 1
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return streak
