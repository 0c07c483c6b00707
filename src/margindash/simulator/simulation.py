"""What-if re-pricing: each (feature, current model) of a period priced on other models.

For every (feature, model) in scope, the period's real token mix is priced on each candidate at
today's catalogue prices, candidates are checked against the constraints (quality, context
window, provider, capabilities) and ranked by intelligence per dollar (quality / simulated cost).
The best candidate of a row is the highest-ranked one that passes every constraint and costs less
than the row did. A model without a quality score is listed but never passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Engine

from margindash.money import NANOS_PER_UNIT
from margindash.orgs.service import Org
from margindash.pricing.catalogue import Catalogue
from margindash.runtime import gc_paused
from margindash.simulator.effects import CustomerEffect, Roi, customer_effects, payback
from margindash.simulator.models import CAPABILITY_FLAGS, ModelDirectory, SimModel, lacks
from margindash.simulator.quality import QualityBook, load_quality_book
from margindash.simulator.repricing import (
    ONE,
    RateCard,
    TokenMix,
    TokenShift,
    mix_cost_nanos,
    total,
)
from margindash.simulator.usage import UsageRow, read_usage

ASSUMED, OBSERVED, SAME_MODEL = "assumed", "observed", "same_model"
_UNCHANGED = TokenShift()
_IDENTICAL = TokenShift(identical=True)  # the same model on another host


class InvalidOption(ValueError):
    """A simulation input that cannot be used, with the request field it came from."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What to simulate and under which constraints (see docs/simulator.md)."""

    date_from: date
    date_to: date
    feature: str | None = None
    customer_id: str | None = None
    candidates: tuple[str, ...] | None = None  # model names; None: the default set
    min_quality: float | None = None
    max_quality_drop_pct: float | None = 5.0
    allowed_providers: frozenset[str] | None = None
    required_capabilities: tuple[str, ...] = ()
    weights: Mapping[str, float] | None = None
    # Tokens a family spends for the same work, relative to a common reference: (input, output).
    token_ratios: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    token_band_pct: Decimal = Decimal(10)
    migration_hours: Decimal | None = None  # engineering hours per swapped (feature, model)
    hourly_rate: Decimal | None = None
    limit: int = 10  # candidates listed per row (the default set only)


@dataclass(slots=True)
class CandidateResult:
    """One candidate model for one row: its quality, simulated cost and verdict."""

    model: SimModel
    quality: float | None
    quality_drop_pct: float | None
    simulated_nanos: int
    shift: TokenShift
    basis: str
    excluded: tuple[str, ...]
    unknown: tuple[str, ...]
    low_nanos: int = 0
    high_nanos: int = 0

    @property
    def eligible(self) -> bool:
        return not self.excluded

    @property
    def intelligence_per_dollar(self) -> float | None:
        return intelligence_per_dollar(self.quality, self.simulated_nanos)

    def rank_key(self) -> tuple[int, float, int, str]:
        tier = 0 if self.eligible else (1 if self.quality is not None else 2)
        ipd = self.intelligence_per_dollar
        return (tier, -(ipd if ipd is not None else 0.0), self.simulated_nanos, self.model.key)


@dataclass(slots=True)
class SwapRow:
    """One (feature, current model) of the period and what it would cost elsewhere."""

    feature: str
    model: str
    current: SimModel | None
    usage: list[UsageRow]
    mix: TokenMix
    cost_nanos: int
    unpriced_events: int
    max_prompt_tokens: int
    quality: float | None
    weights: Mapping[str, float]
    current_cost_today_nanos: int | None = None
    candidates: list[CandidateResult] = field(default_factory=list)
    considered: int = 0
    best: CandidateResult | None = None
    note: str | None = None

    @property
    def unpriced(self) -> bool:
        """Every event of the row is unpriced: its cost is unknown, never 0."""
        return self.unpriced_events >= self.mix.events

    @property
    def simulated_nanos(self) -> int:
        return self.best.simulated_nanos if self.best else self.cost_nanos

    @property
    def savings_nanos(self) -> int:
        return self.cost_nanos - self.simulated_nanos

    @property
    def savings_low_nanos(self) -> int:
        return self.cost_nanos - (self.best.high_nanos if self.best else self.cost_nanos)

    @property
    def savings_high_nanos(self) -> int:
        return self.cost_nanos - (self.best.low_nanos if self.best else self.cost_nanos)

    @property
    def intelligence_per_dollar(self) -> float | None:
        if self.unpriced_events:  # a part of the cost is unknown
            return None
        return intelligence_per_dollar(self.quality, self.cost_nanos)


@dataclass(slots=True)
class Simulation:
    """The outcome: rows, the effect on each customer, and the payback."""

    org: Org
    options: SimulationOptions
    priced_at: datetime
    attribution: str | None
    rows: list[SwapRow]
    customers: list[CustomerEffect]
    roi: Roi

    @property
    def cost_nanos(self) -> int:
        """The priced part of the period's cost (as the P&L: unpriced events are counted apart)."""
        return sum(row.cost_nanos for row in self.rows)

    @property
    def unpriced_events(self) -> int:
        return sum(row.unpriced_events for row in self.rows)

    @property
    def simulated_nanos(self) -> int:
        return sum(row.simulated_nanos for row in self.rows)

    @property
    def savings_low_nanos(self) -> int:
        return sum(row.savings_low_nanos for row in self.rows)

    @property
    def savings_high_nanos(self) -> int:
        return sum(row.savings_high_nanos for row in self.rows)

    def payback_months(self, effect: CustomerEffect) -> float | None:
        """Months for one customer's savings to pay for the swaps that touch it."""
        if self.roi.cost_per_swap_nanos is None:
            return None
        return payback(self.roi.cost_per_swap_nanos * effect.swaps, effect.monthly_savings_nanos)


def intelligence_per_dollar(quality: float | None, cost_nanos: int) -> float | None:
    """Quality points per USD; None without a quality or a cost."""
    if quality is None or cost_nanos <= 0:
        return None
    return quality * NANOS_PER_UNIT / cost_nanos


@gc_paused()
def simulate(
    engine: Engine,
    *,
    org: Org,
    catalogue: Catalogue,
    options: SimulationOptions,
    default_weights: Mapping[str, float],
    watch_pct: float = 20.0,
    at: datetime | None = None,
) -> Simulation:
    """Re-price the org's usage of the period on other models (see the module doc)."""
    at = at or datetime.now(UTC)
    book = load_quality_book(
        engine, org_id=org.id, default_weights=default_weights, request_weights=options.weights
    )
    directory = ModelDirectory(catalogue, scores_of=book.bundled.get, at=at)
    explicit = _explicit_candidates(directory, options.candidates)
    for capability in options.required_capabilities:
        if capability not in CAPABILITY_FLAGS:
            raise InvalidOption("required_capabilities", f"unknown capability {capability!r}")
    usage = read_usage(
        engine,
        org_id=org.id,
        date_from=options.date_from,
        date_to=options.date_to,
        customer_id=options.customer_id,
        feature=options.feature,
    )
    rows = _rows(usage.groups, directory, book)
    simulator = _RowSimulator(catalogue, directory, book, options, at, rows)
    for row in rows:
        simulator.fill(row, explicit)
    customers, roi = customer_effects(
        engine,
        org=org,
        usage=usage,
        rows=rows,
        options=options,
        shares=simulator.shares,
        watch_pct=watch_pct,
    )
    return Simulation(org, options, at, book.attribution, rows, customers, roi)


def _explicit_candidates(
    directory: ModelDirectory, names: Sequence[str] | None
) -> list[SimModel] | None:
    if names is None:
        return None
    found = []
    for index, name in enumerate(names):
        model = directory.find(name.strip())
        if model is None:
            raise InvalidOption(
                f"candidates.{index}", f"{name!r} is not a catalogue model priced per token"
            )
        found.append(model)
    return found


def _rows(
    usage: dict[tuple[str, str], list[UsageRow]], directory: ModelDirectory, book: QualityBook
) -> list[SwapRow]:
    rows = []
    for (feature, model_name), members in usage.items():
        current = directory.find(model_name)
        cost = unpriced = biggest = 0
        for member in members:
            cost += member.cost_nanos
            unpriced += member.unpriced_events
            biggest = max(biggest, member.max_prompt_tokens)
        rows.append(
            SwapRow(
                feature=feature,
                model=model_name,
                current=current,
                usage=members,
                mix=total(m.mix for m in members),
                cost_nanos=cost,
                unpriced_events=unpriced,
                max_prompt_tokens=biggest,
                quality=book.quality(current.key if current else model_name, feature),
                weights=book.weights(feature),
            )
        )
    return sorted(rows, key=lambda r: (-r.cost_nanos, r.feature, r.model))


class _RowSimulator:
    """Prices and judges candidates for each row; remembers per-feature facts between rows."""

    def __init__(
        self,
        catalogue: Catalogue,
        directory: ModelDirectory,
        book: QualityBook,
        options: SimulationOptions,
        at: datetime,
        rows: list[SwapRow],
    ):
        self.catalogue = catalogue
        self.directory = directory
        self.book = book
        self.options = options
        self.at = at
        self.band = options.token_band_pct / 100
        self._pools: dict[str, list[SimModel]] = {}
        self._cards: dict[str, RateCard] = {}
        # What each model did per call on each feature: observed tokens beat assumptions.
        self._observed: dict[str, dict[str, TokenMix]] = {}
        for row in rows:
            identity = row.current.identity if row.current is not None else row.model
            seen = self._observed.setdefault(row.feature, {})
            seen[identity] = total((seen.get(identity, TokenMix()), row.mix))

    def fill(self, row: SwapRow, explicit: list[SimModel] | None) -> None:
        """Price, judge and rank the candidates of a row; choose its best."""
        if row.current is not None:
            row.current_cost_today_nanos = mix_cost_nanos(
                self.catalogue, row.current, row.mix, self.at
            )
        pool = explicit if explicit is not None else self._default_pool(row.feature)
        results = [self._judge(row, model) for model in pool if not _same(model, row.current)]
        if explicit is None:
            results = _one_host_per_model(results, self.options.allowed_providers is None)
        results.sort(key=CandidateResult.rank_key)
        row.considered = len(results)
        row.best, row.note = _best(row, results)
        shown = results if explicit is not None else results[: self.options.limit]
        if row.best is not None and row.best not in shown:
            shown = [*shown[:-1], row.best]  # it ranks below every one shown
        for result in shown:
            low, high = result.shift.widened(self.band)
            result.low_nanos = self._cost(result.model, low.apply(row.mix))
            result.high_nanos = self._cost(result.model, high.apply(row.mix))
        row.candidates = shown

    def shares(self, row: SwapRow) -> list[int]:
        """How much of the row's new cost each customer's part carries: its own mix at the best
        candidate's per-token rates (weights: the row's exact cost is what gets shared)."""
        best = row.best
        assert best is not None
        card = self._cards.get(best.model.key)
        if card is None:
            card = self._cards[best.model.key] = RateCard.of(self.catalogue, best.model, self.at)
        if best.shift in (_UNCHANGED, _IDENTICAL):
            return [max(card.picos(usage.mix), 0) for usage in row.usage]
        return [max(card.picos(best.shift.apply(usage.mix)), 0) for usage in row.usage]

    def _cost(self, model: SimModel, mix: TokenMix) -> int:
        return mix_cost_nanos(self.catalogue, model, mix, self.at)

    def _default_pool(self, feature: str) -> list[SimModel]:
        """Scored, current (not deprecated) catalogue models on every allowed host."""
        pool = self._pools.get(feature)
        if pool is None:
            scores = self.book.catalogue(feature)
            allowed = self.options.allowed_providers
            pool = [
                model
                for model in self.directory.of_keys(scores.models)
                if not model.deprecated
                and (allowed is None or model.provider in allowed)
                and self.book.quality(model.key, feature) is not None
            ]
            self._pools[feature] = pool
        return pool

    def _judge(self, row: SwapRow, model: SimModel) -> CandidateResult:
        quality = self.book.quality(model.key, row.feature)
        drop = None
        if quality is not None and row.quality:
            drop = (row.quality - quality) / row.quality * 100
        shift, basis = self._shift(row, model)
        excluded, unknown = self._constraints(row, model, quality, drop)
        return CandidateResult(
            model=model,
            quality=quality,
            quality_drop_pct=drop,
            simulated_nanos=self._cost(model, shift.apply(row.mix)),
            shift=shift,
            basis=basis,
            excluded=excluded,
            unknown=unknown,
        )

    def _shift(self, row: SwapRow, model: SimModel) -> tuple[TokenShift, str]:
        if row.current is not None and model.identity == row.current.identity:
            return _IDENTICAL, SAME_MODEL
        seen = self._observed.get(row.feature, {}).get(model.identity)
        if seen is not None and seen.events:
            return TokenShift(observed_per_call=seen), OBSERVED
        ratios = self.options.token_ratios
        if not ratios:
            return _UNCHANGED, ASSUMED
        mine = ratios.get(model.family, (ONE, ONE))
        theirs = ratios.get(row.current.family, (ONE, ONE)) if row.current else (ONE, ONE)
        return TokenShift(mine[0] / theirs[0], mine[1] / theirs[1]), ASSUMED

    def _constraints(
        self, row: SwapRow, model: SimModel, quality: float | None, drop: float | None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        options = self.options
        excluded: list[str] = []
        unknown: list[str] = []
        if quality is None:
            excluded.append("no quality score")
        elif options.min_quality is not None and quality < options.min_quality:
            excluded.append(f"quality {quality:.1f} is below min_quality {options.min_quality:g}")
        if quality is not None and options.max_quality_drop_pct is not None:
            if row.quality is None and options.min_quality is None:
                excluded.append("the current model has no quality score to compare with")
            elif drop is not None and drop > options.max_quality_drop_pct:
                excluded.append(
                    f"quality {quality:.1f} is {drop:.1f}% below the current "
                    f"{row.quality:.1f} (max_quality_drop_pct {options.max_quality_drop_pct:g})"
                )
        if model.context_window is None:
            unknown.append("context_window")
        elif model.context_window < row.max_prompt_tokens:
            excluded.append(
                f"context window {model.context_window:,} is smaller than the largest prompt "
                f"{row.max_prompt_tokens:,}"
            )
        allowed = options.allowed_providers
        if allowed is not None and model.provider not in allowed:
            excluded.append(f"provider {model.provider} is not allowed")
        for capability in options.required_capabilities:
            missing = lacks(model, capability)
            if missing is None:
                unknown.append(capability)
            elif missing:
                excluded.append(f"no {capability}")
        return tuple(excluded), tuple(unknown)


def _same(model: SimModel, current: SimModel | None) -> bool:
    return current is not None and model.key == current.key


def _one_host_per_model(
    results: list[CandidateResult], prefer_maker: bool
) -> list[CandidateResult]:
    """Of several hosts of one model keep one: the best-ranked of those that pass, the maker's
    own API first when preferred (providers not restricted)."""
    kept: dict[str, tuple[tuple[bool, bool, tuple[int, float, int, str]], CandidateResult]] = {}
    for result in results:
        key = (not result.eligible, prefer_maker and not result.model.maker_host, result.rank_key())
        other = kept.get(result.model.identity)
        if other is None or key < other[0]:
            kept[result.model.identity] = (key, result)
    return [result for _, result in kept.values()]


def _best(row: SwapRow, ranked: list[CandidateResult]) -> tuple[CandidateResult | None, str | None]:
    if row.unpriced_events:
        return None, (
            f"{row.unpriced_events} events of this model are unpriced, so its cost is "
            "incomplete: price the model (alias or custom price) to compare"
        )
    if row.cost_nanos <= 0:
        return None, "no cost to save"
    eligible = [r for r in ranked if r.eligible]
    if not eligible:
        return None, "no candidate meets the constraints"
    for result in eligible:
        if result.simulated_nanos < row.cost_nanos:
            return result, None
    return None, "no candidate that meets the constraints costs less"
