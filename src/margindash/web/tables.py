"""Tables as pages show them and as CSV exports them: one definition, the API's values.

Rows hold values exactly as the API writes them (decimal strings for money, rounded numbers for
percentages), so the HTML table, its CSV download and the JSON API always agree. Keys starting
with `_` are for the page only (links, highlights) and never exported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

NUMERIC_KINDS = frozenset({"money", "precise_money", "pct", "count"})


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its key in the rows (and CSV header), its heading and how values read."""

    key: str
    label: str
    # text | wrap (long text) | money | precise_money | pct | count | action | date | timestamp
    kind: str = "text"
    shown: bool = True  # hidden columns are exported to CSV but not drawn

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS


@dataclass(frozen=True, slots=True)
class DataTable:
    """A titled table that can be sorted by any column and exported as CSV."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    sort: str | None = None
    descending: bool = False

    @property
    def shown_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.shown)

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns if c.key == key), None)

    def sorted_by(self, key: str | None, direction: str | None) -> DataTable:
        """The table sorted by a column (`asc`/`desc`); unchanged when the column is unknown."""
        column = self.column(key) if key else None
        if column is None:
            return self
        descending = direction == "desc" if direction in ("asc", "desc") else column.numeric
        present = [r for r in self.rows if r.get(column.key) not in (None, "")]
        missing = [r for r in self.rows if r.get(column.key) in (None, "")]
        present.sort(key=lambda row: _sort_key(row[column.key], column), reverse=descending)
        return replace(self, rows=present + missing, sort=column.key, descending=descending)

    def filtered(
        self, search: str | None, keys: Iterable[str] = ("key",), *, or_key: str | None = None
    ) -> DataTable:
        """Rows whose text in `keys` contains `search` (case-insensitive), and the row keyed
        `or_key` (what the search names, when a row's key spells it another way)."""
        if not search:
            return self
        needle = search.strip().lower()
        names = tuple(keys)
        rows = [
            r
            for r in self.rows
            if any(needle in str(r.get(k, "")).lower() for k in names)
            or (or_key is not None and r.get("key") == or_key)
        ]
        return replace(self, rows=rows)

    def to_csv(self) -> str:
        """The table as CSV: headers are the column keys, values as the API writes them."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            writer.writerow(["" if row.get(c.key) is None else row[c.key] for c in self.columns])
        return out.getvalue()


def _sort_key(value: Any, column: Column) -> Any:
    if column.kind in ("money", "precise_money", "pct"):
        return Decimal(str(value))
    if column.kind == "count":
        return int(value)
    return str(value).lower()
