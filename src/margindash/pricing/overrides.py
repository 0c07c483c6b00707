"""An org's own pricing rules: aliases, custom models and negotiated discounts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from sqlalchemy import Engine, select, update

from margindash.db.tables import model_aliases, price_overrides
from margindash.money import parse_decimal, scaled_exactly
from margindash.pricing.catalogue import CompiledPrice, TokenCounts, picos_to_nanos
from margindash.pricing.normalise import canonical_name, provider_id

_RULES_TTL_S = 5.0


class ResolvesModels(Protocol):
    """A catalogue, or the history of catalogues, that can tell whether a name is known."""

    def resolve_at(self, model_name: str, provider_hint: str | None, at: datetime) -> object: ...


ALWAYS = date(1970, 1, 1)  # the default effective date: in force for every event


@dataclass(frozen=True, slots=True)
class Alias:
    """An org's name for a model (an Azure deployment, an internal name) from a date on."""

    id: int
    alias: str
    model: str
    provider: str | None
    effective_from: date = ALWAYS


@dataclass(frozen=True, slots=True)
class CustomPrice:
    """A model priced by the org itself (self-hosted or negotiated), per 1M tokens."""

    id: int
    effective_from: date
    price: CompiledPrice
    effective_to: date | None = None

    def applies(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

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
    effective_to: date | None = None

    def applies(self, *, provider: str, model: str, on: date) -> bool:
        return (
            on >= self.effective_from
            and (self.effective_to is None or on <= self.effective_to)
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

    aliases: dict[str, list[Alias]] = field(default_factory=dict)
    # How names were priced under these rules, per catalogue history token (see
    # `service.OrgPrices`).
    plans: dict[int, dict[tuple[object, ...], Any]] = field(
        default_factory=dict, repr=False, compare=False
    )
    custom: dict[str, list[CustomPrice]] = field(default_factory=dict)
    discounts: list[Discount] = field(default_factory=list)

    def custom_price(self, name: str, on: date) -> CustomPrice | None:
        """The custom price of `name` in force on `on` (latest effective date wins)."""
        best = None
        for entry in self.custom.get(name, ()):
            if entry.applies(on) and (best is None or entry.effective_from >= best.effective_from):
                best = entry
        return best

    def alias(self, name: str, on: date) -> Alias | None:
        """What `name` stands for on `on` (latest effective date wins)."""
        best = None
        for entry in self.aliases.get(name, ()):
            if entry.effective_from <= on and (
                best is None or entry.effective_from > best.effective_from
            ):
                best = entry
        return best

    def discount(self, *, provider: str, model: str, on: date) -> Discount | None:
        """The most specific discount for a catalogue model (model beats provider-wide)."""
        best, best_rank = None, None
        for d in self.discounts:  # usually none or one: this runs for every priced event
            if d.applies(provider=provider, model=model, on=on):
                rank = (d.model is not None, d.effective_from, d.id)
                if best_rank is None or rank > best_rank:
                    best, best_rank = d, rank
        return best


# $100,000 per 1M tokens is hundreds of times any real model's price, and keeps the largest
# call's cost (10M tokens) and the rollups that add such costs inside 64-bit integers.
MAX_PRICE_PER_MTOK = 100_000


def parse_price_per_mtok(value: str | Decimal | None, field_name: str) -> int | None:
    """A USD price per 1M tokens as integer nano-USD per 1M tokens (exact, non-negative)."""
    if value is None:
        return None
    try:
        amount = parse_decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{field_name}: not a decimal number") from exc
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{field_name}: must be a non-negative number")
    if amount > MAX_PRICE_PER_MTOK:
        raise ValueError(f"{field_name}: at most {MAX_PRICE_PER_MTOK} USD per 1M tokens")
    nanos = scaled_exactly(amount, 9)
    if nanos is None:
        raise ValueError(f"{field_name}: at most 9 decimal places")
    return nanos


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
            rules.aliases.setdefault(row.alias, []).append(_alias(row))
        for row in conn.execute(
            select(price_overrides).where(
                price_overrides.c.org_id == org_id, price_overrides.c.deleted_at.is_(None)
            )
        ):
            if row.discount_bp is not None:
                rules.discounts.append(_discount(row))
            elif row.model is not None:
                rules.custom.setdefault(row.model, []).append(
                    CustomPrice(row.id, row.effective_from, _compiled(row), row.effective_to)
                )
    return rules


def _alias(row: Any) -> Alias:
    return Alias(row.id, row.alias, row.model, row.provider, row.effective_from)


def _discount(row: Any) -> Discount:
    return Discount(
        row.id, row.provider, row.model, row.effective_from, row.discount_bp, row.effective_to
    )


class RulesCache:
    """Org pricing rules kept in memory for a few seconds; changes here invalidate at once."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[OrgPricingRules, float]] = {}

    def get(self, engine: Engine, org_id: str) -> OrgPricingRules:
        now = time.monotonic()
        cached = self._entries.get(org_id)
        if cached is None or cached[1] < now:
            rules = load_rules(engine, org_id)
            if cached is not None and rules == cached[0]:
                # Unchanged: keep the rules already loaded, and with them the plans they made
                # (re-planning every name of a busy org every few seconds is measurable).
                rules = cached[0]
            cached = (rules, now + _RULES_TTL_S)
            self._entries[org_id] = cached
        return cached[0]

    def invalidate(self, org_id: str) -> None:
        self._entries.pop(org_id, None)


def add_alias(
    engine: Engine,
    *,
    org_id: str,
    alias: str,
    model: str,
    provider: str | None = None,
    effective_from: date = ALWAYS,
    catalogue: ResolvesModels | None = None,
) -> Alias:
    """Create an org's alias, or replace the one with the same name and effective date.

    With a `catalogue`, the model must be in it or be one of the org's custom models, so a typo
    cannot leave events unpriced without anyone noticing.
    """
    key, target = canonical_name(alias), model.strip()
    if not key:
        raise ValueError("alias: must not be empty")
    if not target:
        raise ValueError("model: must not be empty")
    if key == canonical_name(target):
        raise ValueError("model: an alias cannot point to itself")
    when = datetime.combine(effective_from, datetime.min.time(), UTC)
    if (
        catalogue is not None
        and catalogue.resolve_at(target, provider_id(provider), when) is None
        and not _has_custom_price(engine, org_id, canonical_name(target))
    ):
        raise ValueError(
            f"model: {target!r} is not in the price catalogue"
            + (f" for provider {provider!r}" if provider else "")
            + " nor a custom model of this org"
        )
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            model_aliases.delete().where(
                model_aliases.c.org_id == org_id,
                model_aliases.c.alias == key,
                model_aliases.c.effective_from == effective_from,
            )
        )
        result = conn.execute(
            model_aliases.insert().values(
                org_id=org_id,
                alias=key,
                model=target,
                provider=provider_id(provider),
                effective_from=effective_from,
                created_at=now,
            )
        )
        alias_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return Alias(alias_id, key, target, provider_id(provider), effective_from)


def _has_custom_price(engine: Engine, org_id: str, model: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            select(price_overrides.c.id).where(
                price_overrides.c.org_id == org_id,
                price_overrides.c.model == model,
                price_overrides.c.discount_bp.is_(None),
                price_overrides.c.deleted_at.is_(None),
            )
        ).first()
    return found is not None


def list_aliases(engine: Engine, *, org_id: str) -> list[Alias]:
    """An org's aliases, by name and effective date."""
    t = model_aliases
    with engine.connect() as conn:
        rows = conn.execute(
            select(t).where(t.c.org_id == org_id).order_by(t.c.alias, t.c.effective_from)
        ).all()
    return [_alias(r) for r in rows]


def delete_alias(engine: Engine, *, org_id: str, alias_id: int) -> bool:
    """Remove an alias (events it priced keep their cost); False when the org has no such alias."""
    t = model_aliases
    with engine.begin() as conn:
        deleted = conn.execute(t.delete().where(t.c.org_id == org_id, t.c.id == alias_id))
    return bool(deleted.rowcount)


@dataclass(frozen=True, slots=True)
class Override:
    """A custom price or a discount as the org set it (prices in USD per 1M tokens)."""

    id: int
    kind: str  # custom | discount
    model: str | None
    provider: str | None
    input_per_mtok: Decimal | None
    output_per_mtok: Decimal | None
    cached_input_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    discount_pct: Decimal | None
    effective_from: date
    effective_to: date | None
    created_at: datetime
    deleted_at: datetime | None


def _per_mtok(nanos: int | None) -> Decimal | None:
    return None if nanos is None else Decimal(nanos).scaleb(-9).normalize()


def _override(row: Any) -> Override:
    discount = row.discount_bp is not None
    return Override(
        id=row.id,
        kind="discount" if discount else "custom",
        model=row.model,
        provider=row.provider,
        input_per_mtok=_per_mtok(row.input_per_mtok_nanos),
        output_per_mtok=_per_mtok(row.output_per_mtok_nanos),
        cached_input_per_mtok=_per_mtok(row.cached_input_per_mtok_nanos),
        cache_write_per_mtok=_per_mtok(row.cache_write_per_mtok_nanos),
        discount_pct=Decimal(row.discount_bp).scaleb(-2).normalize() if discount else None,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


def list_overrides(engine: Engine, *, org_id: str, include_deleted: bool = False) -> list[Override]:
    """An org's custom prices and discounts, oldest first."""
    t = price_overrides
    query = select(t).where(t.c.org_id == org_id).order_by(t.c.id)
    if not include_deleted:
        query = query.where(t.c.deleted_at.is_(None))
    with engine.connect() as conn:
        return [_override(r) for r in conn.execute(query)]


def get_override(engine: Engine, *, org_id: str, override_id: int) -> Override | None:
    t = price_overrides
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.org_id == org_id, t.c.id == override_id)).first()
    return None if row is None else _override(row)


def delete_override(engine: Engine, *, org_id: str, override_id: int) -> bool:
    """Stop using an override for new pricing; it stays on record for events that name it."""
    t = price_overrides
    with engine.begin() as conn:
        deleted = conn.execute(
            update(t)
            .where(t.c.org_id == org_id, t.c.id == override_id, t.c.deleted_at.is_(None))
            .values(deleted_at=datetime.now(UTC))
        )
    return bool(deleted.rowcount)


def _discount_bp(discount_pct: str | Decimal) -> int:
    try:
        pct = parse_decimal(str(discount_pct))
    except InvalidOperation:
        raise ValueError("discount_pct: not a decimal number") from None
    basis_points = scaled_exactly(pct, 2) if pct.is_finite() and 0 < pct <= 100 else None
    if basis_points is None:
        raise ValueError("discount_pct: a number above 0 and at most 100, 2 decimals at most")
    return basis_points


def _custom_prices(**prices: str | Decimal | None) -> dict[str, int | None]:
    values = {f"{name}_nanos": parse_price_per_mtok(value, name) for name, value in prices.items()}
    if values["input_per_mtok_nanos"] is None:
        raise ValueError("input_per_mtok: a custom price needs input and output prices")
    if values["output_per_mtok_nanos"] is None:
        raise ValueError("output_per_mtok: a custom price needs input and output prices")
    for name, nanos in values.items():
        if nanos is not None and nanos % 1000:
            raise ValueError(f"{name.removesuffix('_nanos')}: at most 6 decimal places")
    return values


def _catalogue_model(catalogue: ResolvesModels, model: str, provider: str | None, on: date) -> str:
    """The catalogue id of the model a name resolves to on a day (ValueError if none)."""
    when = datetime.combine(on, datetime.min.time(), UTC)
    found = catalogue.resolve_at(model, provider_id(provider), when)
    if not isinstance(found, tuple):
        raise ValueError(
            f"model: {model.strip()!r} is not in the price catalogue"
            + (f" for provider {provider!r}" if provider else "")
        )
    return str(found[1].model_id)


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
    effective_from: date = ALWAYS,
    effective_to: date | None = None,
    catalogue: ResolvesModels | None = None,
) -> int:
    """Add a custom model price or a discount; returns its id.

    With a `catalogue`, a discount's model is looked up the way events are (a dated snapshot
    name is the catalogue model it resolves to), and one it does not know is refused: the
    discount would otherwise apply to no event, silently.
    """
    if effective_to is not None and effective_to < effective_from:
        raise ValueError("effective_to: must not be before effective_from")
    values: dict[str, object] = {
        "org_id": org_id,
        "model": canonical_name(model) if model else None,
        "provider": provider_id(provider),
        "effective_from": effective_from,
        "effective_to": effective_to,
        "created_at": datetime.now(UTC),
    }
    if discount_pct is not None:
        given = (input_per_mtok, output_per_mtok, cached_input_per_mtok, cache_write_per_mtok)
        if any(price is not None for price in given):
            raise ValueError("discount_pct: give a discount or custom prices, not both")
        if model is None and provider is None:
            raise ValueError("provider: a discount needs a provider or a model")
        values["discount_bp"] = _discount_bp(discount_pct)
        if model and catalogue is not None:
            values["model"] = _catalogue_model(catalogue, model, provider, effective_from)
    else:
        if not model:
            raise ValueError("model: a custom price needs a model name")
        values.update(
            _custom_prices(
                input_per_mtok=input_per_mtok,
                output_per_mtok=output_per_mtok,
                cached_input_per_mtok=cached_input_per_mtok,
                cache_write_per_mtok=cache_write_per_mtok,
            )
        )
    with engine.begin() as conn:
        result = conn.execute(price_overrides.insert().values(**values))
        return int(result.inserted_primary_key[0])  # type: ignore[index]
