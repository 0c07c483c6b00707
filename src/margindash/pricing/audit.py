"""Audit the catalogue in force against a second source, so a wrong upstream price is caught.

The second source is LiteLLM's price file, bundled as `data/reference_prices.json` (derived by
`scripts/derive_reference_prices.py`, each entry mapped to the genai-prices model that prices
the same name). A price is listed when the two differ by more than the threshold, relative to
the reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from margindash.pricing.listing import CurrentCatalogue
from margindash.pricing.rows import in_force

DEFAULT_THRESHOLD_PCT = Decimal(10)
# Reference field → catalogue column.
_COMPARED = {
    "input_mtok": "input_per_mtok",
    "output_mtok": "output_per_mtok",
    "cache_read_mtok": "cached_input_per_mtok",
    "cache_write_mtok": "cache_write_per_mtok",
}


@dataclass(frozen=True, slots=True)
class ReferencePrices:
    """The bundled second source."""

    source: str
    version: str
    entries: dict[str, dict[str, Any]]


@lru_cache(maxsize=1)
def reference_prices() -> ReferencePrices:
    raw = resources.files("margindash.pricing").joinpath("data", "reference_prices.json")
    document = json.loads(raw.read_text(encoding="utf-8"))
    return ReferencePrices(document["source"], document["version"], document["models"])


@dataclass(frozen=True, slots=True)
class PriceDifference:
    """One price on which the catalogue and the reference disagree."""

    provider: str
    model: str
    field: str
    catalogue: Decimal
    reference: Decimal
    difference_pct: Decimal | None  # relative to the reference; None when the reference is 0
    reference_key: str
    match: str  # how the reference name maps to the model: id, alias or rule


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The outcome of one audit."""

    reference: str
    threshold_pct: Decimal
    compared_models: int
    compared_prices: int
    differences: list[PriceDifference]
    not_in_catalogue: list[str]  # reference models the catalogue does not list


def _difference_pct(catalogue: Decimal, reference: Decimal) -> Decimal | None:
    if reference == 0:
        return None
    return (abs(catalogue - reference) * 100 / reference).quantize(Decimal("0.01"))


def audit_catalogue(
    catalogue: CurrentCatalogue,
    *,
    threshold_pct: Decimal = DEFAULT_THRESHOLD_PCT,
    at: datetime | None = None,
) -> AuditReport:
    """Prices in force at `at` that differ from the reference by more than `threshold_pct`."""
    at = at or datetime.now(UTC)
    reference = reference_prices()
    seen: set[tuple[str, str, str, Decimal]] = set()
    models: set[tuple[str, str]] = set()
    missing: set[str] = set()
    differences = []
    # A model's own name first, so it is the one reported when several names share a price.
    ordered = sorted(
        reference.entries.items(),
        key=lambda kv: (kv[0] != kv[1]["genai_prices"]["model_id"], kv[0]),
    )
    for key, entry in ordered:
        target = (entry["genai_prices"]["provider_id"], entry["genai_prices"]["model_id"])
        rows = catalogue.models.get(target)
        if not rows:
            missing.add(f"{target[0]}:{target[1]}")
            continue
        models.add(target)
        row = in_force(rows, at)
        for field, column in _COMPARED.items():
            ours = getattr(row, column)
            if ours is None or field not in entry:
                continue
            theirs = Decimal(entry[field])
            if (*target, column, theirs) in seen:
                continue  # several reference names for one model and price
            seen.add((*target, column, theirs))
            pct = _difference_pct(ours, theirs)
            if (pct is None and ours != 0) or (pct is not None and pct > threshold_pct):
                differences.append(
                    PriceDifference(
                        *target, column, ours, theirs, pct, key, entry["genai_prices"]["match"]
                    )
                )
    differences.sort(key=lambda d: (-(d.difference_pct or Decimal("Infinity")), d.provider))
    return AuditReport(
        reference=f"{reference.source} {reference.version}",
        threshold_pct=threshold_pct,
        compared_models=len(models),
        compared_prices=len(seen),
        differences=differences,
        not_in_catalogue=sorted(missing),
    )
