"""A local cost estimate as a CSV file: per request (`request_id,cost_usd`) or per customer
(`customer_id,cost_usd[,revenue_usd]`). Amounts are decimal USD; any error names its line."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol

REQUEST, CUSTOMER = "request", "customer"
_LAYOUTS = {
    frozenset({"request_id", "cost_usd"}): REQUEST,
    frozenset({"customer_id", "cost_usd"}): CUSTOMER,
    frozenset({"customer_id", "cost_usd", "revenue_usd"}): CUSTOMER,
}
_HEADER_HELP = "request_id,cost_usd or customer_id,cost_usd[,revenue_usd]"
_MAX_KEY = 255


class _Rows(Protocol):
    """A `csv.reader`: rows of cells, and the file line the last row ended on."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...


class BadEstimates(ValueError):
    """The file cannot be read as an estimate; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class LocalLine:
    """One line of the estimate: where it is in the file, its key and amounts."""

    line: int
    key: str
    cost: Decimal
    revenue: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LocalEstimates:
    """The whole estimate: per `request` or per `customer`, with or without revenue."""

    kind: str
    lines: tuple[LocalLine, ...]
    has_revenue: bool


def read_estimates(path: Path) -> LocalEstimates:
    """Read and check the CSV; BadEstimates names the first bad line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse(path, csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise BadEstimates(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise BadEstimates(f"{path}: not CSV ({exc})") from None
    except OSError as exc:
        raise BadEstimates(f"{path}: {exc.strerror or exc}") from None


def _parse(path: Path, reader: _Rows) -> LocalEstimates:
    header, header_line = _header(path, reader)
    kind = _LAYOUTS.get(frozenset(header))
    if kind is None or len(set(header)) != len(header):
        raise BadEstimates(
            f"{path}:{header_line}: header is {','.join(header)!r}; expected {_HEADER_HELP}"
        )
    key_name = "request_id" if kind == REQUEST else "customer_id"
    lines: list[LocalLine] = []
    seen: dict[str, int] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{reader.line_num}"
        line = _line(where, reader.line_num, header, row, key_name)
        if line.key in seen:
            raise BadEstimates(
                f"{where}: {key_name} {line.key!r} again (first on line {seen[line.key]})"
            )
        seen[line.key] = reader.line_num
        lines.append(line)
    if not lines:
        raise BadEstimates(f"{path}: no estimates after the header")
    return LocalEstimates(kind, tuple(lines), "revenue_usd" in header)


def _header(path: Path, reader: _Rows) -> tuple[list[str], int]:
    for row in reader:
        if any(cell.strip() for cell in row):
            return [cell.strip().lower() for cell in row], reader.line_num
    raise BadEstimates(f"{path}: empty file; expected a header line {_HEADER_HELP}")


def _line(where: str, number: int, header: list[str], row: list[str], key_name: str) -> LocalLine:
    if len(row) != len(header):
        raise BadEstimates(
            f"{where}: {len(row)} fields, expected {len(header)} ({','.join(header)})"
        )
    cells = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
    key = cells[key_name]
    if not key or len(key) > _MAX_KEY:
        raise BadEstimates(f"{where}: {key_name} must be 1 to {_MAX_KEY} characters")
    cost = _amount(where, "cost_usd", cells["cost_usd"])
    if cost < 0:
        raise BadEstimates(f"{where}: cost_usd {cells['cost_usd']!r} is negative")
    revenue = (
        _amount(where, "revenue_usd", cells["revenue_usd"]) if "revenue_usd" in cells else None
    )
    return LocalLine(number, key, cost, revenue)


def _amount(where: str, name: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise BadEstimates(f"{where}: {name} {text!r} is not a decimal amount like 0.000066")
    return value
