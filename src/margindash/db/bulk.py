"""Multi-row INSERT … ON CONFLICT through the driver, for the ingest hot path.

SQLAlchemy's per-row parameter processing costs more than the insert itself at tens of
thousands of rows a second, so the ledger writer renders one statement per chunk and hands
the driver ready values. Values must already be in the driver's form: `sqlite_value` converts
dates and timestamps the way SQLAlchemy stores them in SQLite, so the ORM-free readers and
`UTCDateTime` read them back unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection

_SQLITE_MAX_VARIABLES = 32_766


def sqlite_value(value: Any) -> Any:
    """A Python value as SQLAlchemy's SQLite dialect stores it (UTC timestamps are naive)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def _for_sqlite(rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
    """Convert the date/time columns (found from the first row) of every row."""
    temporal = [i for i, value in enumerate(rows[0]) if isinstance(value, date)]
    if not temporal:
        return rows
    converted = []
    for row in rows:
        values = list(row)
        for i in temporal:
            if values[i] is not None:
                values[i] = sqlite_value(values[i])
        converted.append(values)
    return converted


class BulkInsert:
    """A reusable multi-row INSERT … ON CONFLICT statement for one table and column list."""

    def __init__(
        self,
        *,
        dialect: str,
        table: str,
        columns: Sequence[str],
        conflict: Sequence[str],
        on_conflict: str,
        returning: Sequence[str] = (),
    ):
        self.dialect = dialect
        self.columns = tuple(columns)
        self._head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        self._tail = f" ON CONFLICT ({', '.join(conflict)}) {on_conflict}"
        if returning:
            self._tail += f" RETURNING {', '.join(returning)}"
        marker = "?" if dialect == "sqlite" else "%s"
        self._row = "(" + ", ".join([marker] * len(columns)) + ")"
        self.chunk = max(1, _SQLITE_MAX_VARIABLES // len(columns)) if dialect == "sqlite" else 1000

    def execute(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Insert the rows (tuples in column order); returns the RETURNING rows, if any."""
        returned: list[tuple[Any, ...]] = []
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            for start in range(0, len(rows), self.chunk):
                chunk = rows[start : start + self.chunk]
                sql = self._head + ", ".join([self._row] * len(chunk)) + self._tail
                if self.dialect == "sqlite":
                    chunk = _for_sqlite(chunk)
                cursor.execute(sql, [value for row in chunk for value in row])
                if "RETURNING" in self._tail:
                    returned.extend(tuple(r) for r in cursor.fetchall())
        finally:
            cursor.close()
        return returned
