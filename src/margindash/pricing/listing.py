"""The catalogue as people read it: models with prices per 1M tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from genai_prices import types as gp

from margindash.pricing.catalogue import Catalogue, CatalogueModel


@dataclass(frozen=True, slots=True)
class ListedModel:
    """One catalogue model and its current standard price per 1M tokens."""

    provider: str
    model: str
    name: str | None
    input_per_mtok: Decimal | None
    cached_input_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    output_per_mtok: Decimal | None
    tiered: bool
    context_window: int | None
    effective_from: date | None
    deprecated: bool


def _base(value: Decimal | gp.TieredPrices | None) -> Decimal | None:
    if isinstance(value, gp.TieredPrices):
        return value.base
    return value


def _effective_from(info: gp.ModelInfo, at: datetime) -> date | None:
    if isinstance(info.prices, gp.ModelPrice):
        return None
    starts = [
        c.constraint.start_date
        for c in info.prices
        if isinstance(c.constraint, gp.StartDateConstraint) and c.constraint.active(at)
    ]
    return max(starts) if starts else None


def describe(catalogue: Catalogue, model: CatalogueModel, at: datetime) -> ListedModel:
    """A model's price in force at `at`."""
    price = catalogue.model_price(model, at)
    values = {k: v for k, v in price.__dict__.items() if v is not None}
    return ListedModel(
        provider=model.provider_id,
        model=model.model_id,
        name=model.info.name,
        input_per_mtok=_base(price.input_mtok),
        cached_input_per_mtok=_base(price.cache_read_mtok),
        cache_write_per_mtok=_base(price.cache_write_mtok),
        output_per_mtok=_base(price.output_mtok),
        tiered=any(isinstance(v, gp.TieredPrices) for v in values.values()),
        context_window=model.info.context_window,
        effective_from=_effective_from(model.info, at),
        deprecated=bool(model.info.deprecated),
    )


def list_models(
    catalogue: Catalogue,
    *,
    provider: str | None = None,
    search: str | None = None,
    include_deprecated: bool = False,
    at: datetime | None = None,
) -> list[ListedModel]:
    """Catalogue models priced per token, optionally filtered, sorted by provider and model."""
    at = at or datetime.now(UTC)
    found = []
    needle = search.lower() if search else None
    for prov in catalogue.providers:
        if provider is not None and prov.id != provider:
            continue
        for info in prov.models:
            if needle and needle not in info.id.lower() and needle not in (info.name or "").lower():
                continue
            listed = describe(catalogue, CatalogueModel(prov.id, info.id, info, prov), at)
            if listed.deprecated and not include_deprecated:
                continue
            if listed.input_per_mtok is None and listed.output_per_mtok is None:
                continue
            found.append(listed)
    return sorted(found, key=lambda m: (m.provider, m.model))
