"""Pure pieces of the dashboard: money and percent formatting, periods, tables, chart axes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from margindash.web.charts import Bucket, axis_label, line_chart, nice_step
from margindash.web.period import choose_period, preset_range
from margindash.web.tables import Column, DataTable
from margindash.web.templating import money, pct, precise_money

MINUS = "\u2212"


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        ("12480.00", "usd", "$12,480.00"),
        ("-43.95", "usd", f"{MINUS}$43.95"),
        ("0.00", "usd", "$0.00"),
        ("1234.5", "eur", "€1,234.50"),
        ("99.00", "chf", "CHF 99.00"),
        (None, "usd", "—"),
    ],
)
def test_money_is_the_api_amount_for_people(value: str | None, currency: str, shown: str) -> None:
    assert money(value, currency) == shown


def test_precise_money_keeps_every_digit() -> None:
    assert precise_money("0.000066") == "$0.000066"
    assert precise_money("2.5") == "$2.50"
    assert precise_money("1250.075") == "$1,250.075"


def test_percentages() -> None:
    assert pct(33.17) == "33.17%"
    assert pct(-18.84) == f"{MINUS}18.84%"
    assert pct(5.2) == "5.20%"
    assert pct(None) == "—"


@pytest.mark.parametrize(
    ("preset", "today", "expected"),
    [
        ("this_month", date(2026, 3, 20), (date(2026, 3, 1), date(2026, 3, 31))),
        ("last_month", date(2026, 3, 20), (date(2026, 2, 1), date(2026, 2, 28))),
        ("last_month", date(2026, 1, 5), (date(2025, 12, 1), date(2025, 12, 31))),
        ("last_30", date(2026, 3, 20), (date(2026, 2, 19), date(2026, 3, 20))),
        ("last_90", date(2026, 3, 20), (date(2025, 12, 21), date(2026, 3, 20))),
    ],
)
def test_presets(preset: str, today: date, expected: tuple[date, date]) -> None:
    assert preset_range(preset, today) == expected


def test_custom_and_bad_periods() -> None:
    today = date(2026, 3, 20)
    custom = choose_period(today=today, preset=None, date_from="2026-01-15", date_to="2026-02-10")
    assert (custom.preset, custom.days, custom.error) == ("custom", 27, None)
    assert custom.params == {"from": "2026-01-15", "to": "2026-02-10"}
    assert custom.label == "15 Jan \u2013 10 Feb 2026"
    for start, end in (("2026-02-10", "2026-01-15"), ("2026-01-15", None), ("x", "y")):
        fallback = choose_period(today=today, preset=None, date_from=start, date_to=end)
        assert fallback.preset == "this_month" and fallback.error
    assert choose_period(today=today, preset="nope", date_from=None, date_to=None).error


def test_tables_sort_numbers_as_numbers_and_keep_blanks_last() -> None:
    table = DataTable(
        "t",
        "T",
        (Column("key", "Key"), Column("margin_pct", "Margin %", "pct")),
        [
            {"key": "b", "margin_pct": 9.5},
            {"key": "a", "margin_pct": None},
            {"key": "c", "margin_pct": -18.84},
            {"key": "d", "margin_pct": 33.17},
        ],
    )
    assert [r["key"] for r in table.sorted_by("margin_pct", None).rows] == ["d", "b", "c", "a"]
    assert [r["key"] for r in table.sorted_by("margin_pct", "asc").rows] == ["c", "b", "d", "a"]
    assert [r["key"] for r in table.sorted_by("key", None).rows] == ["a", "b", "c", "d"]
    assert table.sorted_by("unknown", "asc") is table
    assert table.to_csv().splitlines() == ["key,margin_pct", "b,9.5", "a,", "c,-18.84", "d,33.17"]


def test_chart_axes_are_round() -> None:
    assert nice_step(Decimal(600)) == Decimal(200)
    assert nice_step(Decimal("8.3")) == Decimal("2.5")
    assert axis_label(Decimal(12500), "usd") == "$12.5k"
    assert axis_label(Decimal(0), "usd") == "$0"
    assert axis_label(Decimal(-200), "usd") == f"{MINUS}$200"
    chart = line_chart(
        [Bucket("1 Oct", "1 Oct 2026", (Decimal(400), Decimal(-20)))],
        [("Revenue", "revenue"), ("Cost", "cost")],
        currency="usd",
    )
    assert chart is not None
    assert chart.y_ticks[0][1].startswith(MINUS)
    assert line_chart([], [("Revenue", "revenue")], currency="usd") is None
