"""Write a re-pricing batch's changed events: move their rollup measures, then update them.

Changed events go to a temporary table; the rollups and the events are then updated from it by
a few set-based statements, so the database does the per-event work, not Python.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection

from margindash.db.tables import ROLLUP_MEASURES
from margindash.ledger.rollups import (
    CUSTOMER_KEY,
    DAILY_KEY,
    MONTH_OF_DAY,
    MONTHLY_KEY,
    upsert_assignments,
)
from margindash.money import NANOS_PER_CENT

_INTEGER = {"sqlite": "INTEGER", "postgresql": "BIGINT"}
_DAY = {"sqlite": "TEXT", "postgresql": "DATE"}  # as `usage_events.day` is stored
_TEMPORARY = {"sqlite": "", "postgresql": " ON COMMIT DELETE ROWS"}
# An event whose model changes leaves the rollup row of its old model (sign -1) and joins the
# row of its new one (sign 1). An event that keeps its model (most do) stays in its row and
# only its cost moves: one row of differences, half the rows to group. The max stays a max.
# Re-pricing never makes an event unpriced. CROSS JOIN fixes the order: SQLite would otherwise
# scan every event to probe the changed ones.
_STAYS = "c.model = e.model"  # both NOT NULL
_OLD_COST_GOES = f"(s.sign < 0 OR {_STAYS})"


def _moved(measure: str) -> str:
    return f"SUM(CASE WHEN {_STAYS} THEN 0 ELSE s.sign * {measure} END)"


_DAILY_MOVES = (
    "INSERT INTO reprice_daily "
    "SELECT e.org_id, e.customer_id, e.day, e.feature, "
    "CASE WHEN s.sign < 0 THEN e.model ELSE c.model END, "
    f"{_moved('1')}, {_moved('e.prompt_tokens')}, {_moved('e.completion_tokens')}, "
    f"{_moved('e.cached_tokens')}, {_moved('e.cache_write_tokens')}, "
    f"{_moved('e.reasoning_tokens')}, "
    "SUM(CASE WHEN s.sign > 0 THEN c.cost_nanos ELSE 0 END "
    f"- CASE WHEN {_OLD_COST_GOES} THEN COALESCE(e.cost_nanos, 0) ELSE 0 END), "
    f"SUM(CASE WHEN {_OLD_COST_GOES} AND e.cost_nanos IS NULL THEN -1 ELSE 0 END), "
    f"{_moved('CASE WHEN e.estimated THEN 1 ELSE 0 END')}, "
    f"{_moved('COALESCE(e.revenue_cents, 0)')} * {NANOS_PER_CENT}, "
    "MAX(CASE WHEN s.sign > 0 THEN e.prompt_tokens ELSE 0 END) "
    "FROM reprice_changes AS c CROSS JOIN usage_events AS e "
    "CROSS JOIN (SELECT -1 AS sign UNION ALL SELECT 1) AS s "
    f"WHERE e.id = c.id AND (s.sign > 0 OR NOT {_STAYS}) GROUP BY 1, 2, 3, 4, 5"
)
# Not UPDATE … FROM: SQLite would scan every event to probe the changed ones.
_UPDATE_EVENTS = (
    "UPDATE usage_events SET (model, provider, cost_nanos, price_source, price_ref) = "
    "(SELECT c.model, c.provider, c.cost_nanos, c.price_source, c.price_ref "
    "FROM reprice_changes AS c WHERE c.id = usage_events.id) "
    "WHERE id IN (SELECT id FROM reprice_changes)"
)


def write_changes(conn: Connection, changes: list[tuple[Any, ...]]) -> None:
    """Move the changed events' rollup measures, then update the events, all in SQL."""
    dialect = conn.dialect.name
    marker = "?" if dialect == "sqlite" else "%s"
    cursor = driver_cursor(conn)
    try:
        for sql in _temporary_tables(dialect):
            cursor.execute(sql)
        cursor.executemany(
            "INSERT INTO reprice_changes (id, model, provider, cost_nanos, price_source, "
            f"price_ref) VALUES ({', '.join([marker] * 6)})",
            changes,
        )
        cursor.execute(_DAILY_MOVES)
        for sql in _rollup_upserts(dialect):
            cursor.execute(sql)
        cursor.execute(_UPDATE_EVENTS)
        updated = cursor.rowcount
        if dialect == "sqlite":  # PostgreSQL empties them at commit
            cursor.execute("DELETE FROM reprice_changes")
            cursor.execute("DELETE FROM reprice_daily")
    finally:
        cursor.close()
    if updated != len(changes):  # the rows are locked or the only writer: a bug if it happens
        raise RuntimeError(f"re-pricing updated {updated} of {len(changes)} events")


@cache
def _temporary_tables(dialect: str) -> tuple[str, ...]:
    integer, end = _INTEGER[dialect], _TEMPORARY[dialect]
    measures = ", ".join(f"{m} {integer} NOT NULL" for m in ROLLUP_MEASURES)
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS reprice_changes (id {integer} PRIMARY KEY, "
        f"model TEXT NOT NULL, provider TEXT, cost_nanos {integer} NOT NULL, "
        f"price_source TEXT, price_ref TEXT){end}",
        "CREATE TEMP TABLE IF NOT EXISTS reprice_daily (org_id TEXT NOT NULL, "
        f"customer_id TEXT NOT NULL, day {_DAY[dialect]} NOT NULL, feature TEXT NOT NULL, "
        f"model TEXT NOT NULL, {measures}){end}",
        # Left behind by a batch that failed after filling them (SQLite keeps them until then).
        "DELETE FROM reprice_changes",
        "DELETE FROM reprice_daily",
    )


@cache
def _rollup_upserts(dialect: str) -> tuple[str, ...]:
    """The daily moves added to each rollup table in primary-key order: the lock order of every
    PostgreSQL writer (ingestion upserts its rollup rows in that order too)."""
    day = ("d.day", "d.customer_id", "d.feature", "d.model")
    month = (MONTH_OF_DAY[dialect].format(day="d.day"), "d.customer_id", "d.feature", "d.model")
    statements = []
    for table, columns, values, grouped in (
        # `reprice_daily` has one row per daily key already: nothing to add up.
        ("daily_rollups", DAILY_KEY, day, False),
        ("monthly_rollups", MONTHLY_KEY, month, True),
        ("customer_months", CUSTOMER_KEY, month[:2], True),
    ):
        keys = ", ".join(str(n) for n in range(1, len(columns) + 1))
        measures = _SUMS if grouped else ", ".join(f"d.{m}" for m in ROLLUP_MEASURES)
        statements.append(
            f"INSERT INTO {table} ({', '.join(columns)}, {', '.join(ROLLUP_MEASURES)}) "
            f"SELECT d.org_id, {', '.join(values)}, {measures} FROM reprice_daily AS d "
            f"WHERE true {f'GROUP BY {keys} ' if grouped else ''}ORDER BY {keys} "
            f"ON CONFLICT ({', '.join(columns)}) {upsert_assignments(dialect, table)}"
        )
    return tuple(statements)


_SUMS = ", ".join([f"SUM(d.{m})" for m in ROLLUP_MEASURES[:-1]] + ["MAX(d.max_prompt_tokens)"])


def driver_cursor(conn: Connection) -> Any:
    """A DB-API cursor on the connection's transaction: no per-row work by SQLAlchemy."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
