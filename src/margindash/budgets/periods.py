"""Budget periods: the calendar month, ISO week or day that contains a moment, in the org's zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from margindash.reports.periods import add_months


@dataclass(frozen=True, slots=True)
class BudgetPeriod:
    """One period of a budget: its org-local days and the UTC instants it starts and ends."""

    kind: str
    first_day: date
    last_day: date
    starts_at: datetime
    ends_at: datetime  # exclusive: the start of the next period

    def elapsed_fraction(self, now: datetime) -> Decimal:
        """How much of the period has passed at `now`, between 0 and 1."""
        total = (self.ends_at - self.starts_at).total_seconds()
        elapsed = (min(max(now, self.starts_at), self.ends_at) - self.starts_at).total_seconds()
        return Decimal(elapsed) / Decimal(total)

    def label(self) -> str:
        """The period for people: `2026-11`, `week of 2026-11-23`, `2026-11-27`."""
        if self.kind == "month":
            return f"{self.first_day:%Y-%m}"
        if self.kind == "week":
            return f"week of {self.first_day.isoformat()}"
        return self.first_day.isoformat()


def budget_period(kind: str, *, zone: ZoneInfo, now: datetime) -> BudgetPeriod:
    """The `month`, `week` (Monday to Sunday) or `day` containing `now` in `zone`."""
    today = now.astimezone(zone).date()
    if kind == "month":
        first = today.replace(day=1)
        following = add_months(first, 1)
    elif kind == "week":
        first = today - timedelta(days=today.weekday())
        following = first + timedelta(days=7)
    elif kind == "day":
        first, following = today, today + timedelta(days=1)
    else:
        raise ValueError(f"unknown budget period {kind!r}")
    return BudgetPeriod(
        kind=kind,
        first_day=first,
        last_day=following - timedelta(days=1),
        starts_at=_midnight(first, zone),
        ends_at=_midnight(following, zone),
    )


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)
