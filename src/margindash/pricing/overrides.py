"""An org's own pricing rules: aliases, custom models and negotiated discounts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Engine, select

from margindash.db.tables import model_aliases, price_overrides
from margindash.pricing.catalogue import CompiledPrice, TokenCounts, picos_to_nanos
from margindash.pricing.normalise import canonical_name, provider_id

_RULES_TTL_S = 5.0


@dataclass(frozen=True, slots=True)
class Alias:
    """An org's name for a model (an Azure deployment, an internal name)."""

    model: str
    provider: str | None


@dataclass(frozen=True, slots=True)
class CustomPrice:
    """A model priced by the org itself (self-hosted or negotiated), per 1M tokens."""

    id: int
    effective_from: date
    price: CompiledPrice

    def cost_nanos(self, tokens: TokenCounts) -> int:
        return picos_to_nanos(self.price.cost_picos(tokens))


@dataclass(frozen=True, slots=True)
class Discount:
    """A percentage off the catalogue price of a provider's models or of one model."""

    id: int
    provider: str | None
    model: str | None
    effective_from: date
    basis_points: int

    def applies(self, *, provider: str, model: str, on: date) -> bool:
        return (
            on >= self.effective_from
            and (self.provider is None or self.provider == provider)
            and (self.model is None or self.model == model)
        )

    def apply(self, nanos: int) -> int:
        """The discounted cost, rounded half to even to the nano."""
        kept = nanos * (10_000 - self.basis_points)
        whole, rest = divmod(kept, 10_000)
        if rest > 5_000 or (rest == 5_000 and whole % 2):
            whole += 1
        return whole


@dataclass(slots=True)
class OrgPricingRules:
    """Everything an org set about pricing, loaded at once."""

    aliases: dict[str, Alias] = field(default_factory=dict)
    custom: dict[str, list[CustomPrice]] = field(default_factory=dict)
    discounts: list[Discount] = field(default_factory=list)

    def custom_price(self, name: str, on: date) -> CustomPrice | None:
        """The custom price of `name` in force on `on` (latest effective date wins)."""
        best = None
        for entry in self.custom.get(name, ()):
            if entry.effective_from <= on and (
                best is None or entry.effective_from >= best.effective_from
            ):
                best = entry
        return best

    def discount(self, *, provider: str, model: str, on: date) -> Discount | None:
        """The most specific discount for a catalogue model (model beats provider-wide)."""
        matching = [d for d in self.discounts if d.applies(provider=provider, model=model, on=on)]
        if not matching:
            return None
        return max(matching, key=lambda d: (d.model is not None, d.effective_from, d.id))


def parse_price_per_mtok(value: str | Decimal | None, field_name: str) -> int | None:
    """A USD price per 1M tokens as integer nano-USD per 1M tokens (exact, non-negative)."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{field_name}: not a decimal number") from exc
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{field_name}: must be a non-negative number")
    nanos = amount * 1_000_000_000
    if nanos != nanos.to_integral_value():
        raise ValueError(f"{field_name}: at most 9 decimal places")
    return int(nanos)


def _compiled(row: object) -> CompiledPrice:
    # nano-USD per 1M tokens ÷ 1000 = pico-USD per token; `add_override` keeps it whole.
    def per_token(nanos_per_mtok: int | None) -> int | None:
        if nanos_per_mtok is None:
            return None
        return nanos_per_mtok // 1000

    return CompiledPrice(
        input=per_token(row.input_per_mtok_nanos),  # type: ignore[attr-defined]
        cache_read=per_token(row.cached_input_per_mtok_nanos),  # type: ignore[attr-defined]
        cache_write=per_token(row.cache_write_per_mtok_nanos),  # type: ignore[attr-defined]
        output=per_token(row.output_per_mtok_nanos),  # type: ignore[attr-defined]
        reasoning=None,
        per_request=0,
    )


def load_rules(engine: Engine, org_id: str) -> OrgPricingRules:
    """Read an org's aliases, custom prices and discounts."""
    rules = OrgPricingRules()
    with engine.connect() as conn:
        for row in conn.execute(select(model_aliases).where(model_aliases.c.org_id == org_id)):
            rules.aliases[row.alias] = Alias(row.model, row.provider)
        for row in conn.execute(select(price_overrides).where(price_overrides.c.org_id == org_id)):
            if row.discount_bp is not None:
                rules.discounts.append(
                    Discount(row.id, row.provider, row.model, row.effective_from, row.discount_bp)
                )
            elif row.model is not None:
                rules.custom.setdefault(row.model, []).append(
                    CustomPrice(row.id, row.effective_from, _compiled(row))
                )
    return rules


class RulesCache:
    """Org pricing rules kept in memory for a few seconds; changes here invalidate at once."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[OrgPricingRules, float]] = {}

    def get(self, engine: Engine, org_id: str) -> OrgPricingRules:
        now = time.monotonic()
        cached = self._entries.get(org_id)
        if cached is None or cached[1] < now:
            cached = (load_rules(engine, org_id), now + _RULES_TTL_S)
            self._entries[org_id] = cached
        return cached[0]

    def invalidate(self, org_id: str) -> None:
        self._entries.pop(org_id, None)


def add_alias(
    engine: Engine, *, org_id: str, alias: str, model: str, provider: str | None = None
) -> None:
    """Create or replace an org's alias."""
    key = canonical_name(alias)
    if not key or not model.strip():
        raise ValueError("alias and model must not be empty")
    with engine.begin() as conn:
        conn.execute(
            model_aliases.delete().where(
                model_aliases.c.org_id == org_id, model_aliases.c.alias == key
            )
        )
        conn.execute(
            model_aliases.insert().values(
                org_id=org_id,
                alias=key,
                model=model.strip(),
                provider=provider_id(provider),
                created_at=datetime.now(UTC),
            )
        )


def add_override(
    engine: Engine,
    *,
    org_id: str,
    model: str | None,
    provider: str | None,
    input_per_mtok: str | Decimal | None = None,
    output_per_mtok: str | Decimal | None = None,
    cached_input_per_mtok: str | Decimal | None = None,
    cache_write_per_mtok: str | Decimal | None = None,
    discount_pct: str | Decimal | None = None,
    effective_from: date,
) -> int:
    """Add a custom model price or a discount; returns its id."""
    values: dict[str, object] = {
        "org_id": org_id,
        "model": canonical_name(model) if model else None,
        "provider": provider_id(provider),
        "effective_from": effective_from,
        "created_at": datetime.now(UTC),
    }
    if discount_pct is not None:
        pct = Decimal(str(discount_pct))
        if not pct.is_finite() or not 0 < pct <= 100 or (pct * 100) % 1:
            raise ValueError("discount_pct: a number above 0 and at most 100, 2 decimals at most")
        if model is None and provider is None:
            raise ValueError("a discount needs a provider or a model")
        values["discount_bp"] = int(pct * 100)
    else:
        if not model:
            raise ValueError("a custom price needs a model name")
        prices = {
            "input_per_mtok_nanos": parse_price_per_mtok(input_per_mtok, "input_per_mtok"),
            "output_per_mtok_nanos": parse_price_per_mtok(output_per_mtok, "output_per_mtok"),
            "cached_input_per_mtok_nanos": parse_price_per_mtok(
                cached_input_per_mtok, "cached_input_per_mtok"
            ),
            "cache_write_per_mtok_nanos": parse_price_per_mtok(
                cache_write_per_mtok, "cache_write_per_mtok"
            ),
        }
        if prices["input_per_mtok_nanos"] is None or prices["output_per_mtok_nanos"] is None:
            raise ValueError("a custom price needs input_per_mtok and output_per_mtok")
        for name, nanos in prices.items():
            if nanos is not None and nanos % 1000:
                raise ValueError(f"{name.removesuffix('_nanos')}: at most 6 decimal places")
        values.update(prices)
    with engine.begin() as conn:
        result = conn.execute(price_overrides.insert().values(**values))
        return int(result.inserted_primary_key[0])  # type: ignore[index]
