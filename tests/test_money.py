"""Report amounts: integer formatting agrees with Decimal's half-even rounding to the cent; numbers
given as text are read the plain way only."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import pytest

from margindash.money import NANOS_PER_CENT, format_money, margin_pct, parse_decimal

_HALF_CENT = NANOS_PER_CENT // 2


def decimal_money(nanos: int) -> str:
    cents = (Decimal(nanos) / 10**9).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return f"{cents + 0:f}"  # + 0 turns -0.00 into 0.00


def amounts() -> list[int]:
    rng = random.Random(7)
    ties = [k * NANOS_PER_CENT + _HALF_CENT for k in range(-205, 205)]
    near = [tie + d for tie in ties[::10] for d in (-1, 1)]
    extremes = [2**63 - 1, -(2**63), 0, 1, -1, 99 * NANOS_PER_CENT, -99 * NANOS_PER_CENT]
    return ties + near + extremes + [rng.randint(-(10**15), 10**15) for _ in range(2000)]


def test_format_money_rounds_half_even_to_the_cent() -> None:
    wrong = {n: format_money(n) for n in amounts() if format_money(n) != decimal_money(n)}
    assert wrong == {}


def test_format_money_examples() -> None:
    assert format_money(12_480 * 10**9) == "12480.00"
    assert format_money(-43_950_000_000) == "-43.95"
    assert format_money(-_HALF_CENT) == "0.00"  # never "-0.00"
    assert format_money(5 * NANOS_PER_CENT) == "0.05"
    assert format_money(3 * _HALF_CENT) == "0.02"  # 1.5 cents: to the even cent


def test_margin_pct_needs_positive_revenue() -> None:
    dollar = 10**9
    assert margin_pct(233_250_000_000, 277_200_000_000) == -18.84  # the brief's Plexo Health
    assert margin_pct(0, dollar) is None
    # A refund-only customer: no sales to take a margin of (not +100%).
    assert margin_pct(-10 * dollar, 0) is None
    assert margin_pct(-10 * dollar, dollar) is None


def test_margin_pct_rounds_half_even_to_a_hundredth() -> None:
    """Against Decimal, on exact ties (margin x 10,000 / revenue ending in .5) and at random."""
    rng = random.Random(11)
    # Revenue 20,000 nanos: every odd margin is a tie (margin / 2 hundredths of a percent).
    cases = [(revenue, cost) for revenue in (20_000, 40_000) for cost in range(-400, 400)]
    cases += [(rng.randint(1, 10**15), rng.randint(-(10**15), 10**15)) for _ in range(2000)]
    for revenue, cost in cases:
        exact = Decimal((revenue - cost) * 100) / revenue
        expected = float(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))
        assert margin_pct(revenue, cost) == expected, (revenue, cost)


@pytest.mark.parametrize(
    ("text", "value"),
    [("233.25", "233.25"), ("-1", "-1"), (" 10 ", "10"), ("1e-6", "0.000001"), (".5", "0.5")],
)
def test_plain_decimal_text_is_read(text: str, value: str) -> None:
    assert parse_decimal(text) == Decimal(value)


@pytest.mark.parametrize(
    "text", ["1_000", "NaN", "-Infinity", "sNaN", "\u0661\u0662", "0x10", "", "1,000", "1 000"]
)
def test_what_only_python_reads_as_a_number_is_refused(text: str) -> None:
    with pytest.raises(InvalidOperation):
        parse_decimal(text)
