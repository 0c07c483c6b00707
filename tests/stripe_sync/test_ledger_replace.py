"""Revenue entries replaced, moved and removed keep the rollups equal to the entries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from margindash.db.tables import daily_rollups, monthly_rollups, revenue_entries
from margindash.ledger.revenue import (
    CheckedRevenue,
    MissingFxRate,
    convert_revenue,
    move_revenue,
    remove_revenue,
    replace_revenue,
)
from margindash.ledger.writer import run_transaction
from margindash.orgs.service import Org
from tests.conftest import Tenant


def entry(
    org: Org, revenue_id: str, customer: str, cents: int, start: date, end: date
) -> CheckedRevenue:
    return convert_revenue(
        org=org,
        rates={},
        revenue_id=revenue_id,
        customer_id=customer,
        amount_minor=cents,
        currency="usd",
        period_start=start,
        period_end=end,
    )


def rollup_revenue(engine: Engine) -> dict[str, dict[str, int]]:
    """Revenue per customer in daily and in monthly rollups, and in the entries."""
    found: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for name, table in (("daily", daily_rollups), ("monthly", monthly_rollups)):
            rows = conn.execute(
                select(table.c.customer_id, func.sum(table.c.revenue_nanos)).group_by(
                    table.c.customer_id
                )
            )
            found[name] = {c: int(n) for c, n in rows if n}
        rows = conn.execute(
            select(
                revenue_entries.c.customer_id, func.sum(revenue_entries.c.amount_nanos)
            ).group_by(revenue_entries.c.customer_id)
        )
        found["entries"] = {c: int(n) for c, n in rows if n}
    return found


def test_replace_move_and_remove_keep_rollups_exact(engine: Engine, tenant: Tenant) -> None:
    org = tenant.org
    jan = (date(2026, 1, 15), date(2026, 2, 14))

    def replace(*entries: CheckedRevenue) -> int:
        return run_transaction(
            engine,
            lambda conn: replace_revenue(
                conn, engine, org_id=org.id, entries=list(entries), source="stripe"
            ),
        )

    assert replace(entry(org, "r1", "a", 5580, *jan), entry(org, "r2", "a", -1000, *jan)) == 2
    assert rollup_revenue(engine)["daily"] == {"a": 45_800_000_000}
    assert replace(entry(org, "r1", "a", 5580, *jan)) == 0  # unchanged: nothing to do
    # A new amount and period: the old spread leaves the rollups, the new one arrives.
    assert replace(entry(org, "r1", "a", 3100, date(2026, 3, 1), date(2026, 3, 31))) == 1
    assert rollup_revenue(engine) == {
        "daily": {"a": 21_000_000_000},
        "monthly": {"a": 21_000_000_000},
        "entries": {"a": 21_000_000_000},
    }
    with engine.connect() as conn:
        march = conn.execute(
            select(monthly_rollups.c.month, monthly_rollups.c.revenue_nanos)
            .where(monthly_rollups.c.revenue_nanos != 0)
            .order_by(monthly_rollups.c.month)
        ).all()
    assert [(str(m), n) for m, n in march] == [
        ("2026-01-01", -5_483_870_970),  # 17 of 31 days of -$10.00, remainder first
        ("2026-02-01", -4_516_129_030),
        ("2026-03-01", 31_000_000_000),
    ]

    moved = run_transaction(
        engine,
        lambda conn: move_revenue(
            conn, engine, org_id=org.id, revenue_ids=["r1", "r2"], customer_id="b"
        ),
    )
    assert moved == 2
    assert rollup_revenue(engine)["monthly"] == {"b": 21_000_000_000}

    removed = run_transaction(
        engine,
        lambda conn: remove_revenue(conn, engine, org_id=org.id, revenue_ids=["r2", "missing"]),
    )
    assert removed == 1
    assert rollup_revenue(engine) == {
        "daily": {"b": 31_000_000_000},
        "monthly": {"b": 31_000_000_000},
        "entries": {"b": 31_000_000_000},
    }


def test_conversion_needs_a_rate_and_keeps_exact_nanos(tenant: Tenant) -> None:
    org = tenant.org
    with pytest.raises(MissingFxRate, match="no FX rate from jpy to usd"):
        convert_revenue(
            org=org,
            rates={},
            revenue_id="x",
            customer_id="c",
            amount_minor=15000,
            currency="JPY",
            period_start=date(2026, 2, 1),
            period_end=date(2026, 2, 28),
        )
    converted = convert_revenue(
        org=org,
        rates={"kwd": Decimal("3.2551")},
        revenue_id="x",
        customer_id="c",
        amount_minor=12345,  # 12.345 KWD (three decimals)
        currency="kwd",
        period_start=date(2026, 2, 1),
        period_end=date(2026, 2, 28),
    )
    assert converted.amount_nanos == 40_184_209_500  # 12.345 x 3.2551 = 40.1842095
