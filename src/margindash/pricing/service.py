"""Price one usage event: org custom prices and aliases, then the catalogue, then discounts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from sqlalchemy import Engine

from margindash.pricing.catalogue import (
    Catalogue,
    CatalogueModel,
    CompiledPrice,
    Rate,
    TokenCounts,
    picos_to_nanos,
    priced_per_token,
)
from margindash.pricing.history import CatalogueHistory, LiveCatalogue
from margindash.pricing.metrics import watch_catalogue
from margindash.pricing.normalise import canonical_name, provider_id
from margindash.pricing.overrides import CustomPrice, Discount, OrgPricingRules, RulesCache


class Quote(NamedTuple):
    """The outcome of pricing one event. `cost_nanos` None means unpriced — never $0.

    A tuple rather than a frozen dataclass: one is built per priced event.
    """

    model: str
    provider: str | None
    cost_nanos: int | None
    price_source: str | None
    price_ref: str | None
    warnings: tuple[str, ...] = ()

    @property
    def priced(self) -> bool:
        return self.cost_nanos is not None


class Pricer:
    """Prices events for any org, with the catalogue and each org's rules cached in memory.

    Without a `catalogue`, prices come from the database's catalogue history (see
    `pricing.history`); with one, from that catalogue alone (tests, benchmarks).
    """

    def __init__(self, engine: Engine, catalogue: Catalogue | None = None):
        self.engine = engine
        self.rules = RulesCache()
        self._prices: dict[str, OrgPrices] = {}  # the last `for_org` of each org
        self._live = LiveCatalogue(engine) if catalogue is None else None
        self._fixed = CatalogueHistory.of(catalogue) if catalogue is not None else None
        if self._live is not None:
            watch_catalogue(engine)

    @property
    def history(self) -> CatalogueHistory:
        """The catalogue versions in force over time."""
        if self._live is not None:
            return self._live.history()
        assert self._fixed is not None
        return self._fixed

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue in force now."""
        return self.history.current

    def reload(self) -> None:
        """Re-read the catalogue history now (after a sync or an approval in this process)."""
        if self._live is not None:
            self._live.refresh(wait=True)

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
        return self.for_org(org_id).price(model_name, provider, tokens, at)

    def for_org(self, org_id: str) -> OrgPrices:
        """An org's prices as they stand now: to price a batch of its events with one look-up
        of its rules and of the catalogue history, instead of one per event."""
        live = self._live  # not `self.history`: this runs for every event of `price`
        history = live.history() if live is not None else self._fixed
        assert history is not None
        rules = self.rules.get(self.engine, org_id)
        prices = self._prices.get(org_id)
        if prices is None or prices.rules is not rules or prices.history is not history:
            prices = self._prices[org_id] = OrgPrices(history, rules)
        return prices

    def booked_model(self, *, org_id: str, model_name: str, at: datetime | None = None) -> str:
        """The model name an event sent as `model_name` is stored and rolled up under at `at`
        (default now): the catalogue model, an alias's target, or, for a model nothing prices,
        the name trimmed and in lower case. Budgets and the guard compare this name."""
        quote = self.price(
            org_id=org_id,
            model_name=model_name,
            provider=None,
            tokens=_NO_TOKENS,
            at=at or datetime.now(UTC),
        )
        return quote.model

    def plan_for_day(
        self, *, org_id: str, model_name: str, provider: str | None, day: date
    ) -> PricePlan | None:
        """The plan that prices every call of the UTC `day`, or None when a catalogue version
        starts within it (hourly prices are in the plan: `PricePlan.hourly`).

        For pricing many stored events: one plan per name and day instead of a look-up each.
        """
        history = self.history
        start = datetime.combine(day, time.min, UTC)
        if history.version_at(start) != history.version_at(start + _LAST_INSTANT):
            return None
        rules = self.rules.get(self.engine, org_id)
        plan = plan_price(history, rules, model_name=model_name, provider=provider, at=start)
        return plan


_LAST_INSTANT = timedelta(days=1, microseconds=-1)
_NO_TOKENS = TokenCounts(0, 0)


@dataclass(frozen=True, slots=True)
class PricePlan:
    """How a name is priced for one org at one time: everything but the token counts.

    A plan holds for a whole day and catalogue version, so an org's rules keep their plans
    (`OrgPricingRules.plans`) and most events cost one dict look-up and a few integer
    multiplications. A price that changes with the time of day (DeepSeek's off-peak hours) is
    taken for each call's instant from `hourly`.
    """

    model: str
    provider: str | None
    source: str | None
    ref: str | None
    custom: CustomPrice | None = None
    rate: Rate | None = None
    discount: Discount | None = None
    warnings: tuple[str, ...] = ()  # why it is unpriced (neither `custom` nor `rate`)
    hourly: tuple[Catalogue, CatalogueModel] | None = None  # the rate depends on the hour
    # The catalogue price in pico-USD when nothing else applies (the common case).
    plain: CompiledPrice | None = field(init=False, default=None)
    # The same in whole nano-USD per token, when it is (`CompiledPrice.nanos`).
    plain_nanos: tuple[int, int, int, int, int, int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        plain = self.custom is None and self.discount is None and self.hourly is None
        if plain and self.rate is not None and self.rate.compiled is not None:
            object.__setattr__(self, "plain", self.rate.compiled)
            object.__setattr__(self, "plain_nanos", self.rate.compiled.nanos)

    def quote(self, tokens: TokenCounts, at: datetime | None = None) -> Quote:
        """The cost of a call; `at` is needed only by `hourly` plans."""
        if self.plain_nanos is not None:
            # `CompiledPrice.cost_picos` written out in nano-USD: most events take this path,
            # where two calls and the rounding step took half the time of pricing an event.
            prompt, completion, cached, cache_write, reasoning = tokens
            input_price, read, write, output, thinking, per_request = self.plain_nanos
            cost = (
                (prompt - cached - cache_write) * input_price
                + cached * read
                + cache_write * write
                + (completion - reasoning) * output
                + reasoning * thinking
                + per_request
            )
            # The same tuple `Quote(...)` builds, without NamedTuple's Python-level __new__:
            # that call took a fifth of the time of pricing an event.
            return _new_tuple(Quote, (self.model, self.provider, cost, self.source, self.ref, ()))
        if self.plain is not None:
            cost = picos_to_nanos(self.plain.cost_picos(tokens))
            return _new_tuple(Quote, (self.model, self.provider, cost, self.source, self.ref, ()))
        if self.custom is not None:
            cost = self.custom.cost_nanos(tokens)
        elif self.rate is not None:
            rate = self.rate
            if self.hourly is not None:
                assert at is not None, "an hourly price needs the call's time"
                catalogue, model = self.hourly
                rate = catalogue.rate(model, at)
            cost = rate.cost_nanos(tokens)
            if self.discount is not None:
                cost = self.discount.apply(cost)
        else:
            return Quote(self.model, self.provider, None, None, None, self.warnings)
        return Quote(self.model, self.provider, cost, self.source, self.ref)


_MAX_PLANS = 50_000
_new_tuple = tuple.__new__


class OrgPrices:
    """How one org's calls are priced under one catalogue history (see `Pricer.for_org`).

    Plans are kept per (name, provider, day): most events cost a dict look-up and `quote`.
    Nothing here reads the database.
    """

    __slots__ = ("_change_days", "_plans", "history", "rules")

    def __init__(self, history: CatalogueHistory, rules: OrgPricingRules):
        self.history = history
        self.rules = rules
        plans = rules.plans.get(history.token)
        if plans is None:
            # A new history (or the first call): plans made with another one no longer hold.
            # The plans of each history live in their own dict, so a thread still pricing
            # with the previous history never leaves its plans under the new one.
            plans = {}
            rules.plans = {history.token: plans}
        self._plans: dict[tuple[object, ...], PricePlan] = plans
        self._change_days = history.change_days

    def price(
        self, model_name: str, provider: str | None, tokens: TokenCounts, at: datetime
    ) -> Quote:
        """Price a call at the price in force at `at`."""
        day = at.date()
        if day in self._change_days:  # two versions may price this day: key on the version
            key: tuple[object, ...] = (model_name, provider, day, self.history.version_at(at))
        else:
            key = (model_name, provider, day)
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_price(
                self.history, self.rules, model_name=model_name, provider=provider, at=at
            )
            if len(self._plans) > _MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        return plan.quote(tokens, at)


def plan_price(
    catalogue: Catalogue | CatalogueHistory,
    rules: OrgPricingRules,
    *,
    model_name: str,
    provider: str | None,
    at: datetime,
) -> PricePlan:
    """How a name is priced: org custom prices and aliases, then the catalogue, then discounts."""
    name = canonical_name(model_name)
    day = at.date()
    if custom := rules.custom_price(name, day):
        return PricePlan(name, provider_id(provider), "override", f"override:{custom.id}", custom)
    alias = rules.alias(name, day) if rules.aliases else None
    if alias is not None:
        target = canonical_name(alias.model)
        if custom := rules.custom_price(target, day):
            return PricePlan(target, alias.provider, "override", f"override:{custom.id}", custom)
        name, provider = alias.model, alias.provider or provider
    resolved = catalogue.resolve_at(name, provider, at)
    if resolved is None:
        return _unpriced(
            model_name,
            provider,
            f"unknown model {model_name.strip()!r}: stored "
            "unpriced; add an alias or a custom price to price it",
        )
    pricing, model = resolved
    rate = pricing.rate(model, at)
    if rate.compiled is None and not priced_per_token(rate.price):
        return _unpriced(
            model_name, provider, f"{model.key} has no per-token price in the catalogue"
        )
    ref = model.key
    discount = rules.discount(provider=model.provider_id, model=model.model_id, on=day)
    if discount is not None:
        ref = f"{ref} discount:{discount.id}"
    return PricePlan(
        model.model_id,
        model.provider_id,
        pricing.source,
        ref,
        rate=rate,
        discount=discount,
        hourly=(pricing, model) if rate.timed else None,
    )


def _unpriced(model_name: str, provider: str | None, warning: str) -> PricePlan:
    return PricePlan(
        canonical_name(model_name), provider_id(provider), None, None, warnings=(warning,)
    )
