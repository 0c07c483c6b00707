"""A catalogue as rows of prices, one per model and conditional price, as people read them.

genai-prices gives a model either one price or a list of conditional prices (from a start date,
or within a daily time window); the last one whose condition holds is in force, else the first.
Rows keep that order (`position`), so the price in force at any instant can be read from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from itertools import groupby
from typing import Any

from genai_prices import types as gp

# Price keys shown as columns; every other priced unit goes to `other_prices`.
PRICE_COLUMNS = {
    "input_mtok": "input_per_mtok",
    "cache_read_mtok": "cached_input_per_mtok",
    "cache_write_mtok": "cache_write_per_mtok",
    "output_mtok": "output_per_mtok",
}
PRICE_FIELDS = tuple(PRICE_COLUMNS.values())
ModelKey = tuple[str, str]


def decimal_text(value: Decimal) -> str:
    """A price as plain decimal text without exponent or trailing zeros (`2.5`, `10`)."""
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One price of one model: USD per 1M tokens, with the condition under which it applies."""

    provider: str
    model: str
    position: int
    name: str | None
    starts_on: date | None
    time_window: str | None
    input_per_mtok: Decimal | None
    cached_input_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    output_per_mtok: Decimal | None
    tiers: str | None
    other_prices: str | None
    context_window: int | None
    deprecated: bool

    @property
    def key(self) -> ModelKey:
        return (self.provider, self.model)

    @property
    def tiered(self) -> bool:
        return self.tiers is not None

    def price_terms(self) -> tuple[Any, ...]:
        """What a price change is: the condition and every price (not names or windows)."""
        return (
            self.starts_on,
            self.time_window,
            *(getattr(self, name) for name in PRICE_FIELDS),
            self.tiers,
            self.other_prices,
        )

    def active(self, at: datetime) -> bool:
        """Whether this row's condition holds at `at` (as genai-prices decides it)."""
        if self.starts_on is not None and at.astimezone(UTC).date() < self.starts_on:
            return False
        return self.time_window is None or _in_window(self.time_window, at)

    def as_json(self) -> dict[str, Any]:
        """The row for JSON: prices as decimal strings."""
        body: dict[str, Any] = {
            "starts_on": self.starts_on.isoformat() if self.starts_on else None,
            "time_window": self.time_window,
        }
        for name in PRICE_FIELDS:
            value = getattr(self, name)
            body[name] = None if value is None else decimal_text(value)
        body["tiers"] = json.loads(self.tiers) if self.tiers else None
        body["other_prices"] = json.loads(self.other_prices) if self.other_prices else None
        return body

    def db_values(self) -> dict[str, Any]:
        """Column values of `model_prices` (without snapshot and `since`)."""
        values: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "position": self.position,
            "name": self.name,
            "starts_on": self.starts_on,
            "time_window": self.time_window,
            "tiers": self.tiers,
            "other_prices": self.other_prices,
            "context_window": self.context_window,
            "deprecated": self.deprecated,
        }
        for name in PRICE_FIELDS:
            value = getattr(self, name)
            values[name] = None if value is None else decimal_text(value)
        return values

    @classmethod
    def from_json(cls, key: ModelKey, position: int, body: Mapping[str, Any]) -> PriceRow:
        """A row as `as_json` wrote it (names and context windows are not kept there)."""
        prices = {name: _decimal(body.get(name)) for name in PRICE_FIELDS}
        return cls(
            provider=key[0],
            model=key[1],
            position=position,
            name=None,
            starts_on=date.fromisoformat(body["starts_on"]) if body.get("starts_on") else None,
            time_window=body.get("time_window"),
            tiers=_json(body.get("tiers") or {}),
            other_prices=_json(body.get("other_prices") or {}),
            context_window=None,
            deprecated=False,
            **prices,
        )

    @classmethod
    def from_db(cls, row: Any) -> PriceRow:
        """A row read from `model_prices`."""
        prices = {name: _decimal(getattr(row, name)) for name in PRICE_FIELDS}
        return cls(
            provider=row.provider,
            model=row.model,
            position=row.position,
            name=row.name,
            starts_on=row.starts_on,
            time_window=row.time_window,
            tiers=row.tiers,
            other_prices=row.other_prices,
            context_window=row.context_window,
            deprecated=bool(row.deprecated),
            **prices,
        )


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _utc_time(value: time) -> time:
    if value.tzinfo is None:
        return value
    return datetime.combine(date(2000, 1, 1), value).astimezone(UTC).time()


def _in_window(window: str, at: datetime) -> bool:
    start_text, _, end_text = window.partition("-")
    start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    now = at.astimezone(UTC).time()
    if end < start:
        return now >= start or now < end
    return start <= now < end


def _window(constraint: gp.TimeOfDateConstraint) -> str:
    start, end = _utc_time(constraint.start_time), _utc_time(constraint.end_time)
    return f"{start:%H:%M}-{end:%H:%M}"


def _price_text(value: Decimal | gp.TieredPrices) -> Any:
    if isinstance(value, gp.TieredPrices):
        return {
            "base": decimal_text(value.base),
            "tiers": [{"start": t.start, "price": decimal_text(t.price)} for t in value.tiers],
        }
    return decimal_text(value)


def _json(values: Mapping[str, Any]) -> str | None:
    return json.dumps(values, sort_keys=True, separators=(",", ":")) if values else None


def _row(
    provider: gp.Provider, model: gp.ModelInfo, position: int, price: gp.ModelPrice, constraint: Any
) -> PriceRow:
    values = {k: v for k, v in price.__dict__.items() if v is not None and not k.startswith("_")}
    columns: dict[str, Decimal | None] = {name: None for name in PRICE_FIELDS}
    tiers: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in sorted(values.items()):
        column = PRICE_COLUMNS.get(key)
        if column is None:
            other[key] = _price_text(value)
            continue
        if isinstance(value, gp.TieredPrices):
            tiers[key] = _price_text(value)
            columns[column] = value.base
        else:
            columns[column] = value
    dated = isinstance(constraint, gp.StartDateConstraint)
    windowed = isinstance(constraint, gp.TimeOfDateConstraint)
    return PriceRow(
        provider=provider.id,
        model=model.id,
        position=position,
        name=model.name,
        starts_on=constraint.start_date if dated else None,
        time_window=_window(constraint) if windowed else None,
        tiers=_json(tiers),
        other_prices=_json(other),
        context_window=model.context_window,
        deprecated=bool(model.deprecated),
        **columns,
    )


def model_rows(provider: gp.Provider, model: gp.ModelInfo) -> list[PriceRow]:
    """The rows of one model, in genai-prices' order."""
    if isinstance(model.prices, gp.ModelPrice):
        return [_row(provider, model, 0, model.prices, None)]
    return [
        _row(provider, model, position, conditional.prices, conditional.constraint)
        for position, conditional in enumerate(model.prices)
    ]


def catalogue_rows(providers: Iterable[gp.Provider]) -> list[PriceRow]:
    """Every row of a catalogue."""
    return [row for p in providers for m in p.models for row in model_rows(p, m)]


def by_model(rows: Iterable[PriceRow]) -> dict[ModelKey, tuple[PriceRow, ...]]:
    """Rows grouped per model, each group in position order."""
    ordered = sorted(rows, key=lambda r: (r.provider, r.model, r.position))
    return {key: tuple(group) for key, group in groupby(ordered, key=lambda r: r.key)}


def in_force(rows: Sequence[PriceRow], at: datetime) -> PriceRow:
    """The row in force at `at`: the last whose condition holds, else the first."""
    for row in reversed(rows):
        if row.active(at):
            return row
    return rows[0]


@dataclass(frozen=True, slots=True)
class ModelChange:
    """How one model's prices differ between two catalogues."""

    provider: str
    model: str
    change: str  # added | removed | repriced
    old: tuple[PriceRow, ...]
    new: tuple[PriceRow, ...]

    def field_changes(self, at: datetime) -> list[tuple[str, Decimal | None, Decimal | None]]:
        """(field, old, new) for each price in force at `at` that differs."""
        if not self.old or not self.new:
            return []
        before, after = in_force(self.old, at), in_force(self.new, at)
        return [
            (name, getattr(before, name), getattr(after, name))
            for name in PRICE_FIELDS
            if getattr(before, name) != getattr(after, name)
        ]


def diff_catalogues(
    old: Mapping[ModelKey, Sequence[PriceRow]], new: Mapping[ModelKey, Sequence[PriceRow]]
) -> list[ModelChange]:
    """Models added, removed and re-priced from `old` to `new`, sorted by provider and model."""
    changes = []
    for key in sorted(old.keys() | new.keys()):
        before, after = tuple(old.get(key, ())), tuple(new.get(key, ()))
        if not before:
            changes.append(ModelChange(*key, "added", (), after))
        elif not after:
            changes.append(ModelChange(*key, "removed", before, ()))
        elif [r.price_terms() for r in before] != [r.price_terms() for r in after]:
            changes.append(ModelChange(*key, "repriced", before, after))
    return changes


def price_jumps(
    old: Mapping[ModelKey, Sequence[PriceRow]],
    new: Mapping[ModelKey, Sequence[PriceRow]],
    *,
    factor: Decimal,
) -> list[str]:
    """Prices that moved by more than `factor` either way, compared condition by condition.

    A price from or to zero is not a jump: free previews becoming paid are routine.
    """
    jumps = []
    for key in sorted(old.keys() & new.keys()):
        before = {(r.starts_on, r.time_window): r for r in old[key]}
        for row in new[key]:
            previous = before.get((row.starts_on, row.time_window))
            if previous is None:
                continue
            for name in PRICE_FIELDS:
                a, b = getattr(previous, name), getattr(row, name)
                if a and b and (b > a * factor or a > b * factor):
                    jumps.append(
                        f"{key[0]}:{key[1]} {name} {decimal_text(a)} → {decimal_text(b)} "
                        f"({decimal_text((b / a).quantize(Decimal('0.01')))}x)"
                    )
    return jumps
