"""The dashboard's Jinja2 environment and the filters that format API values for people.

Pages receive numbers exactly as the API writes them (decimal strings, rounded percentages),
so a figure on screen, in a CSV export and in `GET /v1/pnl` is always the same figure.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import pass_context
from starlette.templating import Jinja2Templates

from margindash.web.period import date_range

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
_MINUS = "\u2212"
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹"}


def currency_symbol(currency: str) -> str:
    """The sign shown before amounts (`$`), or the upper-case code and a space."""
    return _SYMBOLS.get(currency.lower(), currency.upper() + " ")


def money(value: str | Decimal | None, currency: str = "usd") -> str:
    """`"-43.95"` as `-$43.95` (a real minus sign), thousands separated; `—` without a value."""
    if value is None or value == "":
        return "—"
    amount = Decimal(value)
    sign = _MINUS if amount < 0 else ""
    return f"{sign}{currency_symbol(currency)}{abs(amount):,.2f}"


def precise_money(value: str | Decimal | None, currency: str = "usd") -> str:
    """An amount with all its significant digits (`$0.000066`), for prices and tiny costs."""
    if value is None or value == "":
        return "—"
    amount = Decimal(value)
    sign = _MINUS if amount < 0 else ""
    text = format(abs(amount).normalize(), "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.ljust(2, "0")
    return f"{sign}{currency_symbol(currency)}{int(whole):,}.{fraction}"


def pct(value: float | Decimal | str | None) -> str:
    """A percentage as the API rounds it (`33.17%`, `-18.84%`); `—` when undefined."""
    if value is None or value == "":
        return "—"
    number = Decimal(str(value))
    sign = _MINUS if number < 0 else ""
    return f"{sign}{abs(number):,.2f}%"


def count(value: int | None) -> str:
    """An integer with thousands separators."""
    return "—" if value is None else f"{int(value):,}"


def day(value: date | datetime | str | None) -> str:
    """A date as `27 Nov 2026`."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return f"{value.day} {value:%b %Y}"


def moment(value: datetime | str | None) -> str:
    """A timestamp (or its RFC 3339 text) as `27 Nov 2026, 14:05 UTC`."""
    if value is None or value == "":
        return "never"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return f"{day(value)}, {value:%H:%M} UTC"


def span(start: date | str, end: date | str) -> str:
    """Two dates as one short range, as the period picker shows them."""
    first = date.fromisoformat(start) if isinstance(start, str) else start
    last = date.fromisoformat(end) if isinstance(end, str) else end
    return date_range(first, last)


def is_negative(value: str | Decimal | float | None) -> bool:
    """Whether an API amount or percentage is below zero."""
    return value not in (None, "") and Decimal(str(value)) < 0


_PERIOD_PARAMS = frozenset({"period", "from", "to"})


@pass_context
def url_with(
    context: Any, params: dict[str, Any] | None = None, path: str | None = None, **changes: Any
) -> str:
    """The current page's URL with some query parameters changed (None removes one).

    Changing the period replaces the whole period selection; `export` is never carried over.
    """
    request = context["request"]
    current = {k: v for k, v in request.query_params.items() if k != "export"}
    updates = {**(params or {}), **changes}
    if _PERIOD_PARAMS & updates.keys():
        current = {k: v for k, v in current.items() if k not in _PERIOD_PARAMS}
    for key, value in updates.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = str(value)
    target = path if path is not None else request.url.path
    return target + ("?" + urlencode(current) if current else "")


def _build() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.trim_blocks = True
    env.lstrip_blocks = True
    env.filters.update(
        money=money,
        precise_money=precise_money,
        pct=pct,
        count=count,
        day=day,
        moment=moment,
        span=span,
    )
    env.tests["negative"] = is_negative
    env.globals["url_with"] = url_with
    return templates


TEMPLATES = _build()


def globals_for(**values: Any) -> None:
    """Add values every template can read (the app version, for cache-busting static files)."""
    TEMPLATES.env.globals.update(values)
