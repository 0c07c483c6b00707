"""Date ranges: months, and splitting a range into whole months and loose days."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

# The days reports cover: they look back two years (streaks) and a day ahead, and both must stay
# inside `date`'s range. Data dated outside is refused where it comes in.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9998, 12, 31)


def month_bounds(year: int, month: int) -> tuple[date, date]:
    """First and last day of a month."""
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def parse_month(text: str) -> tuple[date, date]:
    """`YYYY-MM` as its first and last day; ValueError otherwise."""
    try:
        year, month = (int(p) for p in text.split("-"))
        return month_bounds(year, month)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not a YYYY-MM month") from None


def this_month(zone: ZoneInfo) -> tuple[date, date]:
    """The current calendar month in a time zone."""
    today = datetime.now(zone).date()
    return month_bounds(today.year, today.month)


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def split_range(start: date, end: date) -> tuple[list[date], list[tuple[date, date]]]:
    """[start, end] as whole months (their first days) and the day ranges left at the edges."""
    months: list[date] = []
    loose: list[tuple[date, date]] = []
    cursor = start
    while cursor <= end:
        first, last = month_bounds(cursor.year, cursor.month)
        if cursor == first and last <= end:
            months.append(first)
        else:
            loose.append((cursor, min(last, end)))
        cursor = last + timedelta(days=1)
    return months, loose
