"""Multi-row INSERT … ON CONFLICT through the driver, for the ingest hot path.

SQLAlchemy's per-row parameter processing costs more than the insert itself at tens of
thousands of rows a second, so the ledger writer hands the driver ready values:

- SQLite: multi-row `VALUES` statements in a few fixed sizes (`_SQLITE_CHUNKS`) and one for
  the few rows left over, so the statement cache hits for large statements (compiling a
  1,000-row statement costs about as much as running it) and a small commit stays one
  statement (each driver call releases the GIL, and getting it back can mean a wait).
  Dates and timestamps are converted the way SQLAlchemy stores them (`sqlite_value`), so
  `UTCDateTime` and the ORM-free readers read them back unchanged.
- PostgreSQL: one `INSERT … SELECT * FROM unnest(array, …)` per chunk, a column per array. The
  statement text is the same for every chunk, so psycopg parses it once; a 1,000-row `VALUES`
  list would be re-parsed (21,000 placeholders) on every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Date, DateTime, Table
from sqlalchemy.dialects import postgresql

_SQLITE_MAX_VARIABLES = 32_766
# Row counts per SQLite statement, largest first; fewer rows than the smallest go in one.
_SQLITE_CHUNKS = (1024, 256, 64)
_POSTGRES_CHUNK = 10_000


def sqlite_timestamp(value: datetime) -> str:
    """A timestamp as SQLAlchemy's SQLite dialect stores it: naive UTC, microseconds always."""
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_value(value: Any) -> Any:
    """A Python value as SQLAlchemy's SQLite dialect stores it (UTC timestamps are naive)."""
    if isinstance(value, datetime):
        return sqlite_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


Converter = Callable[[Any], Any]


def _sqlite_converters(table: Table, columns: Sequence[str]) -> list[tuple[int, Converter]]:
    """(position, converter) for each column SQLite cannot take as the Python value."""
    converters: list[tuple[int, Converter]] = []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        kind = getattr(kind, "impl", kind)  # TypeDecorators such as UTCDateTime
        if isinstance(kind, DateTime):
            converters.append((i, sqlite_timestamp))
        elif isinstance(kind, Date):
            converters.append((i, date.isoformat))
    return converters


class BulkInsert:
    """A reusable multi-row INSERT … ON CONFLICT statement for one table and column list.

    `postgres_wrapper` places the PostgreSQL INSERT inside a larger statement (`{insert}`),
    such as a WITH query that also writes what the inserted rows add elsewhere. Such a
    statement takes all rows at once: in chunks, its other writes would lock rows in one sorted
    pass per chunk instead of one for all (the order that keeps concurrent writers apart).
    """

    def __init__(
        self,
        *,
        dialect: str,
        table: Table,
        columns: Sequence[str],
        conflict: Sequence[str],
        on_conflict: str,
        returning: Sequence[str] = (),
        postgres_wrapper: str = "{insert}",
    ):
        self.dialect = dialect
        self.columns = tuple(columns)
        self.returning = bool(returning)
        names = ", ".join(columns)
        tail = f" ON CONFLICT ({', '.join(conflict)}) {on_conflict}"
        if returning:
            tail += f" RETURNING {', '.join(returning)}"
        if dialect == "sqlite":
            self._head, self._tail = f"INSERT INTO {table.name} ({names}) VALUES ", tail
            self._row = "(" + ", ".join(["?"] * len(columns)) + ")"
            self._converters = _sqlite_converters(table, columns)
            self._sizes = [n for n in _SQLITE_CHUNKS if n * len(columns) <= _SQLITE_MAX_VARIABLES]
        else:
            pg = postgresql.dialect()
            arrays = ", ".join(f"%b::{table.c[c].type.compile(dialect=pg)}[]" for c in columns)
            insert = f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}){tail}"
            self._sql = postgres_wrapper.format(insert=insert)
            self._postgres_chunk = _POSTGRES_CHUNK if self._sql == insert else None

    def execute(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> Any:
        """Insert the rows (tuples in column order).

        Returns the RETURNING rows if the statement has a RETURNING clause, else the number
        of rows inserted or updated.
        """
        returned: list[tuple[Any, ...]] = []
        count = 0
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            for chunk in self._chunks(rows):
                if self.dialect == "sqlite":
                    sql = self._head + ", ".join([self._row] * len(chunk)) + self._tail
                    cursor.execute(sql, self._sqlite_params(chunk))
                else:
                    cursor.execute(self._sql, [list(column) for column in zip(*chunk, strict=True)])
                if self.returning:
                    returned.extend(tuple(r) for r in cursor.fetchall())
                else:
                    count += cursor.rowcount
        finally:
            cursor.close()
        return returned if self.returning else count

    def _chunks(self, rows: Sequence[Sequence[Any]]) -> Iterator[Sequence[Sequence[Any]]]:
        if self.dialect != "sqlite":
            size = self._postgres_chunk or max(len(rows), 1)
            for start in range(0, len(rows), size):
                yield rows[start : start + size]
            return
        start = 0
        for size in self._sizes:
            while len(rows) - start >= size:
                yield rows[start : start + size]
                start += size
        if start < len(rows):
            yield rows[start:]

    def _sqlite_params(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        if not self._converters:
            return [value for row in rows for value in row]
        # Rows of one request share `received_at`, often `day` and `occurred_at` too.
        converted: dict[Any, Any] = {}
        flat: list[Any] = []
        for row in rows:
            values = list(row)
            for i, convert in self._converters:
                value = values[i]
                if value is not None:
                    stored = converted.get(value)
                    if stored is None:
                        stored = converted[value] = convert(value)
                    values[i] = stored
            flat += values
        return flat
