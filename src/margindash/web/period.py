"""The period picker: this month, last month, last 30 or 90 days, or a custom range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

from margindash.reports.periods import add_months, month_bounds

_DASH = " \u2013 "
PRESETS = {
    "this_month": "This month",
    "last_month": "Last month",
    "last_30": "Last 30 days",
    "last_90": "Last 90 days",
}
DEFAULT_PRESET = "this_month"
MAX_RANGE_DAYS = 3660  # as the API


@dataclass(frozen=True, slots=True)
class Period:
    """The range a page reports on, and how the picker shows it."""

    preset: str  # one of PRESETS, or "custom"
    date_from: date
    date_to: date
    error: str | None = None

    @property
    def label(self) -> str:
        return date_range(self.date_from, self.date_to)

    @property
    def params(self) -> dict[str, str]:
        """Query parameters that select this period again."""
        if self.preset == "custom":
            return {"from": self.date_from.isoformat(), "to": self.date_to.isoformat()}
        return {"period": self.preset}

    @property
    def query(self) -> str:
        return urlencode(self.params)

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1


def date_range(a: date, b: date) -> str:
    """`1-31 Oct 2026`, `15 Sep-13 Oct 2026` or `1 Dec 2025-31 Jan 2026` (with en dashes)."""
    if a.year != b.year:
        return f"{a.day} {a:%b %Y}{_DASH}{b.day} {b:%b %Y}"
    if a.month != b.month:
        return f"{a.day} {a:%b}{_DASH}{b.day} {b:%b %Y}"
    if a.day != b.day:
        return f"{a.day}{_DASH}{b.day} {b:%b %Y}"
    return f"{a.day} {a:%b %Y}"


def preset_range(preset: str, today: date) -> tuple[date, date]:
    """The dates of a preset, as seen on `today` (in the org's time zone)."""
    if preset == "this_month":
        return month_bounds(today.year, today.month)
    if preset == "last_month":
        first = add_months(today, -1)
        return month_bounds(first.year, first.month)
    if preset == "last_30":
        return today - timedelta(days=29), today
    if preset == "last_90":
        return today - timedelta(days=89), today
    raise ValueError(f"unknown period {preset!r}")


def choose_period(
    *, today: date, preset: str | None, date_from: str | None, date_to: str | None
) -> Period:
    """The period asked for in the query string; the default (with an error) when malformed."""
    if date_from or date_to:
        try:
            start, end = date.fromisoformat(date_from or ""), date.fromisoformat(date_to or "")
        except ValueError:
            return _default(today, "Dates must be given as YYYY-MM-DD, both from and to.")
        if end < start:
            return _default(today, "The end date is before the start date.")
        if (end - start).days > MAX_RANGE_DAYS:
            return _default(today, f"A range can span at most {MAX_RANGE_DAYS} days.")
        return Period("custom", start, end)
    if preset is None or preset == "":
        preset = DEFAULT_PRESET
    if preset not in PRESETS:
        return _default(today, f"Unknown period {preset!r}.")
    return Period(preset, *preset_range(preset, today))


def _default(today: date, error: str) -> Period:
    return Period(DEFAULT_PRESET, *preset_range(DEFAULT_PRESET, today), error=error)
