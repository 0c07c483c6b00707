"""Exact money: costs and revenue as integer nano-units (1e-9) in storage, `Decimal` in Python.

A single LLM call can cost $0.000018, so cents are too coarse for cost; nano-USD keeps every sum
exact in a 64-bit integer up to about $9.2 billion.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

NANOS_PER_UNIT = 1_000_000_000
NANOS_PER_CENT = NANOS_PER_UNIT // 100
_HALF_CENT = NANOS_PER_CENT // 2
_NANO = Decimal("1e-9")
_CENT = Decimal("0.01")
# "00" to "99": a lookup costs half of formatting with `:02d`, and a report formats 30,000 amounts.
_CENTS = tuple(f"{cents:02d}" for cents in range(100))


# A number as JSON and people write one: ASCII digits, an optional sign, point and exponent.
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_decimal(text: str) -> Decimal:
    """A number given as text (`"233.25"`, `"-1"`, `"1e-6"`; whitespace around it is ignored).

    Raises InvalidOperation for anything else, including what `Decimal()` itself would take but
    no client means as a number: `"1_000"`, `"NaN"`, `"Infinity"`, non-ASCII digits.
    """
    stripped = text.strip()
    if _DECIMAL_TEXT.fullmatch(stripped) is None:
        raise InvalidOperation(f"not a plain decimal number: {text!r}")
    return Decimal(stripped)


def plain_number(value: object) -> object:
    """A pydantic `BeforeValidator`: a number sent as text must be written as `parse_decimal`
    reads it (pydantic's own parsing takes `"1_000"`); other values pass through."""
    if isinstance(value, str):
        try:
            parse_decimal(value)
        except InvalidOperation:
            raise ValueError("must be a number such as 12.5") from None
    return value


def to_nanos(amount: Decimal) -> int:
    """An amount in major units as integer nano-units (banker's rounding below a nano)."""
    return int((amount * NANOS_PER_UNIT).to_integral_value(rounding=ROUND_HALF_EVEN))


def scaled_exactly(amount: Decimal, places: int) -> int | None:
    """`amount` x 10^places as an integer, or None if `amount` has more decimal places.

    Integer arithmetic on the digits: multiplying Decimals would round to the context's 28
    digits first, and `0.1000000000000000000000000000001` would pass as `0.1`.
    """
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int), "finite amounts only"
    whole = int("".join(map(str, digits)) or "0")
    shift = exponent + places
    if shift >= 0:
        scaled = whole * 10**shift
    elif whole == 0:
        scaled = 0
    elif -shift > len(digits):  # more places than digits: cannot be whole
        return None
    else:
        scaled, rest = divmod(whole, 10**-shift)
        if rest:
            return None
    return -scaled if sign else scaled


def from_nanos(nanos: int) -> Decimal:
    """Integer nano-units as an exact Decimal in major units."""
    return (Decimal(nanos) * _NANO).normalize() if nanos else Decimal(0)


def format_cost(nanos: int | None) -> str | None:
    """A cost for JSON: all significant digits, at least 2 decimals (`"0.000066"`, `"277.20"`)."""
    if nanos is None:
        return None
    # Integer arithmetic: this runs once per event in every ingest response.
    whole, fraction = divmod(abs(nanos), NANOS_PER_UNIT)
    digits = f"{fraction:09d}".rstrip("0").ljust(2, "0")
    return f"{'-' if nanos < 0 else ''}{whole}.{digits}"


def format_money(nanos: int) -> str:
    """A report amount for JSON, rounded half-even to the cent (`"12480.00"`, never `"-0.00"`)."""
    # Integer arithmetic rather than Decimal: a report formats tens of thousands of amounts.
    cents, rest = divmod(nanos, NANOS_PER_CENT)
    if rest > _HALF_CENT or (rest == _HALF_CENT and cents & 1):
        cents += 1
    if cents < 0:
        cents = -cents
        return f"-{cents // 100}.{_CENTS[cents % 100]}"
    return f"{cents // 100}.{_CENTS[cents % 100]}"


def margin_pct(revenue_nanos: int, cost_nanos: int) -> float | None:
    """Margin as a percentage of revenue, rounded to 2 decimals; None without positive revenue
    (a refund-only customer would otherwise show +100%)."""
    if revenue_nanos <= 0:
        return None
    # Hundredths of a percent, exactly: (margin / revenue) x 10,000, rounded half-even
    # (revenue is positive, so divmod's remainder is too).
    quotient, remainder = divmod((revenue_nanos - cost_nanos) * 10_000, revenue_nanos)
    twice = 2 * remainder
    if twice > revenue_nanos or (twice == revenue_nanos and quotient & 1):
        quotient += 1
    return quotient / 100


def split_evenly(total: int, parts: int) -> list[int]:
    """Split an integer amount into `parts` integers that sum exactly to it (remainder first)."""
    base, remainder = divmod(abs(total), parts)
    sign = -1 if total < 0 else 1
    return [sign * (base + (1 if i < remainder else 0)) for i in range(parts)]
