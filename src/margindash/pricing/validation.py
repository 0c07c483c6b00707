"""Whether a fetched catalogue may replace the one in force, or must wait for a person.

`payload.parse_payload` rejects what cannot be a catalogue at all (a failed sync). What can be
a catalogue but looks wrong — a price moving more than `max_jump`x either way, or a sentinel
price (`data/sentinel_prices.json`) missing or different — is stored but held for review.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources

from margindash.pricing.rows import ModelKey, PriceRow, decimal_text, in_force, price_jumps

_MAX_LISTED = 20


@dataclass(frozen=True, slots=True)
class SentinelPrice:
    """A list price every catalogue must still show."""

    provider: str
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal


@lru_cache(maxsize=1)
def sentinel_prices() -> tuple[SentinelPrice, ...]:
    """The bundled sentinel prices."""
    raw = resources.files("margindash.pricing").joinpath("data", "sentinel_prices.json")
    document = json.loads(raw.read_text(encoding="utf-8"))
    return tuple(
        SentinelPrice(
            e["provider"], e["model"], Decimal(e["input_per_mtok"]), Decimal(e["output_per_mtok"])
        )
        for e in document["prices"]
    )


def sentinel_mismatches(
    catalogue: Mapping[ModelKey, Sequence[PriceRow]], *, at: datetime
) -> list[str]:
    """Sentinel prices the catalogue lacks or prices differently at `at`."""
    problems = []
    for sentinel in sentinel_prices():
        rows = catalogue.get((sentinel.provider, sentinel.model))
        name = f"{sentinel.provider}:{sentinel.model}"
        if not rows:
            problems.append(f"sentinel model {name} is missing")
            continue
        row = in_force(rows, at)
        for field, expected in (
            ("input_per_mtok", sentinel.input_per_mtok),
            ("output_per_mtok", sentinel.output_per_mtok),
        ):
            found = getattr(row, field)
            if found != expected:
                shown = "none" if found is None else decimal_text(found)
                problems.append(
                    f"sentinel {name} {field} is {shown}, expected {decimal_text(expected)}"
                )
    return problems


def review_reasons(
    *,
    current: Mapping[ModelKey, Sequence[PriceRow]],
    candidate: Mapping[ModelKey, Sequence[PriceRow]],
    at: datetime,
    max_jump: Decimal,
) -> list[str]:
    """Why `candidate` must be reviewed before it replaces `current` (empty: it need not)."""
    reasons = [
        f"moved more than {decimal_text(max_jump)}x: {jump}"
        for jump in price_jumps(current, candidate, factor=max_jump)
    ]
    reasons += sentinel_mismatches(candidate, at=at)
    return reasons


def summarise(reasons: Sequence[str]) -> str:
    """Reasons as one text for logs and the runs table, the first few in full."""
    shown = list(reasons[:_MAX_LISTED])
    if len(reasons) > _MAX_LISTED:
        shown.append(f"and {len(reasons) - _MAX_LISTED} more")
    return "; ".join(shown)
