"""A token mix (the summed tokens of many calls), how it changes on another model, and its cost.

Costs are exact integers from `Catalogue.cost_nanos`. Flat per-token prices are linear, so a mix
is priced once on its totals: the exact cost of those tokens, rounded once to the nano. Tiered
prices (chosen by each call's prompt size) and per-request fees depend on the calls, so such a
mix is priced as its `events` calls of even size (the average call), each rounded like ingest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import pairwise
from typing import NamedTuple

from margindash.pricing.catalogue import Catalogue, TokenCounts
from margindash.simulator.models import SimModel

ONE = Decimal(1)


class TokenMix(NamedTuple):
    """Calls and their summed tokens (cached within prompt, reasoning within completion)."""

    events: int = 0
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0

    @property
    def tokens(self) -> TokenCounts:
        return TokenCounts(*self[1:])


def total(mixes: Iterable[TokenMix]) -> TokenMix:
    """The sum of several mixes."""
    events = prompt = completion = cached = cache_write = reasoning = 0
    for mix in mixes:
        events += mix[0]
        prompt += mix[1]
        completion += mix[2]
        cached += mix[3]
        cache_write += mix[4]
        reasoning += mix[5]
    return TokenMix(events, prompt, completion, cached, cache_write, reasoning)


@dataclass(frozen=True, slots=True)
class TokenShift:
    """How a mix changes on a candidate model.

    Either assumed ratios (candidate tokens per current token, input and output), or the
    per-call tokens the org's own data shows for the candidate on the same feature, or
    `identical` tokens (the same model on another host): no range either way for the last two.
    """

    input_ratio: Decimal = ONE
    output_ratio: Decimal = ONE
    observed_per_call: TokenMix | None = None
    identical: bool = False

    def apply(self, mix: TokenMix) -> TokenMix:
        """The mix as the candidate would have produced it (same number of calls)."""
        if self.observed_per_call is not None:
            seen = self.observed_per_call
            return TokenMix(
                mix.events,
                _share(mix.events, seen.prompt, seen.events),
                _share(mix.events, seen.completion, seen.events),
                _share(mix.events, seen.cached, seen.events),
                _share(mix.events, seen.cache_write, seen.events),
                _share(mix.events, seen.reasoning, seen.events),
            )
        if self.input_ratio == ONE and self.output_ratio == ONE:
            return mix
        return TokenMix(
            mix.events,
            _scale(mix.prompt, self.input_ratio),
            _scale(mix.completion, self.output_ratio),
            _scale(mix.cached, self.input_ratio),
            _scale(mix.cache_write, self.input_ratio),
            _scale(mix.reasoning, self.output_ratio),
        )

    def widened(self, band: Decimal) -> tuple[TokenShift, TokenShift]:
        """The low and high ends of an assumption ± `band` (a fraction); observed or identical
        tokens as they are."""
        if self.observed_per_call is not None or self.identical or not band:
            return self, self
        low, high = ONE - band, ONE + band
        return (
            TokenShift(self.input_ratio * low, self.output_ratio * low),
            TokenShift(self.input_ratio * high, self.output_ratio * high),
        )


def _scale(tokens: int, ratio: Decimal) -> int:
    return int((tokens * ratio).to_integral_value(rounding=ROUND_HALF_EVEN))


def _share(events: int, total: int, over: int) -> int:
    """events x total / over, rounded half to even."""
    return round_div(events * total, over)


def round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator (> 0) as an integer, rounded half to even, without floats."""
    whole, rest = divmod(numerator, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and whole % 2):
        whole += 1
    return whole


def mix_cost_nanos(catalogue: Catalogue, model: SimModel, mix: TokenMix, at: datetime) -> int:
    """The exact cost of a mix on a model at the prices in force at `at`."""
    if not model.per_call or mix.events <= 1:
        return catalogue.cost_nanos(model.model, mix.tokens, at)
    return sum(
        count * catalogue.cost_nanos(model.model, tokens, at) for count, tokens in even_calls(mix)
    )


def even_calls(mix: TokenMix) -> Iterator[tuple[int, TokenCounts]]:
    """The mix as `events` calls of (near) equal size: (how many calls, tokens of each)."""
    n = mix.events
    kinds = (mix.prompt, mix.completion, mix.cached, mix.cache_write, mix.reasoning)
    splits = [divmod(total, n) for total in kinds]
    # Call i gets one more token of a kind while i < that kind's remainder.
    bounds = sorted({0, n, *(rest for _, rest in splits)})
    for start, end in pairwise(bounds):
        counts = [base + (1 if start < rest else 0) for base, rest in splits]
        yield end - start, TokenCounts(*counts)


@dataclass(frozen=True, slots=True)
class RateCard:
    """A model's price per token of each kind in pico-USD (prices of a 1,000-token call, so the
    lowest tier), to share one exact cost among customers in proportion to their own mixes."""

    input: int
    cached: int
    cache_write: int
    output: int
    reasoning: int
    per_call: int

    @classmethod
    def of(cls, catalogue: Catalogue, model: SimModel, at: datetime) -> RateCard:
        def cost(*tokens: int) -> int:
            # 1,000 tokens at p pico-USD each cost p nano-USD.
            return catalogue.cost_nanos(model.model, TokenCounts(*tokens), at)

        fee = cost(0, 0)
        return cls(
            input=cost(1000, 0) - fee,
            cached=cost(1000, 0, 1000) - fee,
            cache_write=cost(1000, 0, 0, 1000) - fee,
            output=cost(0, 1000) - fee,
            reasoning=cost(0, 1000, 0, 0, 1000) - fee,
            per_call=fee * 1000,
        )

    def picos(self, mix: TokenMix) -> int:
        """What the mix costs at these rates, in pico-USD."""
        events, prompt, completion, cached, cache_write, reasoning = mix
        return (
            (prompt - cached - cache_write) * self.input
            + cached * self.cached
            + cache_write * self.cache_write
            + (completion - reasoning) * self.output
            + reasoning * self.reasoning
            + events * self.per_call
        )
