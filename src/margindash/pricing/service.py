"""Price one usage event: org custom prices and aliases, then the catalogue, then discounts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from margindash.pricing.catalogue import Catalogue, NotPricedPerToken, TokenCounts
from margindash.pricing.normalise import canonical_name, provider_id
from margindash.pricing.overrides import OrgPricingRules, RulesCache


@dataclass(frozen=True, slots=True)
class Quote:
    """The outcome of pricing one event. `cost_nanos` None means unpriced — never $0."""

    model: str
    provider: str | None
    cost_nanos: int | None
    price_source: str | None
    price_ref: str | None
    warnings: tuple[str, ...] = field(default=())

    @property
    def priced(self) -> bool:
        return self.cost_nanos is not None


class Pricer:
    """Prices events for any org, with the catalogue and each org's rules cached in memory."""

    def __init__(self, engine: Engine, catalogue: Catalogue | None = None):
        self.engine = engine
        self.catalogue = catalogue or Catalogue()
        self.rules = RulesCache()

    def price(
        self,
        *,
        org_id: str,
        model_name: str,
        provider: str | None,
        tokens: TokenCounts,
        at: datetime,
    ) -> Quote:
        """Price a call at the price in force at `at`."""
        return price_with_rules(
            self.catalogue,
            self.rules.get(self.engine, org_id),
            model_name=model_name,
            provider=provider,
            tokens=tokens,
            at=at,
        )


def price_with_rules(
    catalogue: Catalogue,
    rules: OrgPricingRules,
    *,
    model_name: str,
    provider: str | None,
    tokens: TokenCounts,
    at: datetime,
) -> Quote:
    """Price a call with an org's rules and the catalogue (pure: no database access)."""
    name = canonical_name(model_name)
    day = at.date()
    if custom := rules.custom_price(name, day):
        return Quote(
            name,
            provider_id(provider),
            custom.cost_nanos(tokens),
            "override",
            f"override:{custom.id}",
        )
    alias = rules.aliases.get(name)
    if alias is not None:
        target = canonical_name(alias.model)
        if custom := rules.custom_price(target, day):
            return Quote(
                target,
                alias.provider,
                custom.cost_nanos(tokens),
                "override",
                f"override:{custom.id}",
            )
        name, provider = alias.model, alias.provider or provider
    model = catalogue.resolve(name, provider)
    if model is None:
        return _unpriced(
            model_name,
            provider,
            f"unknown model {model_name.strip()!r}: stored "
            "unpriced; add an alias or a custom price to price it",
        )
    try:
        cost = catalogue.cost_nanos(model, tokens, at)
    except NotPricedPerToken as exc:
        return _unpriced(model_name, provider, str(exc))
    ref = model.key
    discount = rules.discount(provider=model.provider_id, model=model.model_id, on=day)
    if discount is not None:
        cost = discount.apply(cost)
        ref = f"{ref} discount:{discount.id}"
    return Quote(model.model_id, model.provider_id, cost, catalogue.source, ref)


def _unpriced(model_name: str, provider: str | None, warning: str) -> Quote:
    return Quote(canonical_name(model_name), provider_id(provider), None, None, None, (warning,))
