"""Exact re-pricing of token mixes, token shifts, cost sharing and monthly amounts (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from margindash.pricing.catalogue import Catalogue
from margindash.simulator.effects import MonthlyRate, allocate, payback
from margindash.simulator.models import ModelDirectory, SimModel, reference_facts
from margindash.simulator.quality import bundled_scores
from margindash.simulator.repricing import (
    RateCard,
    TokenMix,
    TokenShift,
    even_calls,
    mix_cost_nanos,
    round_div,
    total,
)

AT = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue()


@pytest.fixture(scope="module")
def directory(catalogue: Catalogue) -> ModelDirectory:
    return ModelDirectory(catalogue, scores_of=bundled_scores().get, at=AT)


def model(directory: ModelDirectory, name: str) -> SimModel:
    found = directory.find(name)
    assert found is not None, name
    return found


def test_flat_prices_are_applied_to_the_totals_exactly(
    catalogue: Catalogue, directory: ModelDirectory
) -> None:
    mini = model(directory, "gpt-4o-mini")
    assert not mini.per_call
    # 32,000 uncached x $0.15 + 8,000 cached x $0.075 + 5,000 output x $0.60, per 1M tokens
    mix = TokenMix(events=3, prompt=40_000, completion=5_000, cached=8_000)
    assert mix_cost_nanos(catalogue, mini, mix, AT) == 4_800_000 + 600_000 + 3_000_000


def test_tiered_prices_use_the_tier_of_each_call_not_of_the_total(
    catalogue: Catalogue, directory: ModelDirectory
) -> None:
    pro = model(directory, "gemini-2.5-pro")
    assert pro.per_call  # > 200k prompt tokens per call costs more
    ten_calls = TokenMix(events=10, prompt=1_000_000, completion=10_000)
    # 100k-token prompts: $1.25 in and $10 out per 1M, not the > 200k tier's $2.50 and $15
    assert mix_cost_nanos(catalogue, pro, ten_calls, AT) == 1_250_000_000 + 100_000_000
    one_call = TokenMix(events=1, prompt=1_000_000, completion=10_000)
    assert mix_cost_nanos(catalogue, pro, one_call, AT) == 2_500_000_000 + 150_000_000


def test_even_calls_add_up_to_the_mix() -> None:
    mix = TokenMix(events=4, prompt=10, completion=7, cached=3, cache_write=0, reasoning=5)
    calls = list(even_calls(mix))
    assert sum(count for count, _ in calls) == 4
    for index, kind in enumerate(("prompt", "completion", "cached", "cache_write", "reasoning")):
        assert sum(count * tokens[index] for count, tokens in calls) == getattr(mix, kind)
    assert calls[0] == (1, (3, 2, 1, 0, 2))  # one call gets the remainders of every kind


def test_shifts_scale_tokens_or_use_the_observed_tokens_per_call() -> None:
    mix = TokenMix(events=3, prompt=40_000, completion=5_000, cached=8_000, reasoning=1_001)
    assert TokenShift().apply(mix) is mix
    scaled = TokenShift(Decimal("1.2"), Decimal("0.5")).apply(mix)
    assert scaled == TokenMix(3, 48_000, 2_500, 9_600, 0, 500)  # 500.5 rounds half to even
    low, high = TokenShift(Decimal("1.2"), Decimal(1)).widened(Decimal("0.1"))
    assert low.apply(mix) == TokenMix(3, 43_200, 4_500, 8_640, 0, 901)
    assert high.apply(mix) == TokenMix(3, 52_800, 5_500, 10_560, 0, 1_101)
    observed = TokenShift(observed_per_call=TokenMix(2, 12_000, 6_000, 1_000, 0, 0))
    assert observed.apply(mix) == TokenMix(3, 18_000, 9_000, 1_500, 0, 0)
    assert observed.widened(Decimal("0.1")) == (observed, observed)


def test_rate_card_prices_a_mix_in_picos(catalogue: Catalogue, directory: ModelDirectory) -> None:
    card = RateCard.of(catalogue, model(directory, "gpt-4o"), AT)
    # $2.50 per 1M tokens is 2,500,000 pico-USD per token
    assert (card.input, card.cached, card.output, card.per_call) == (2_500_000, 1_250_000, 10**7, 0)
    mix = TokenMix(events=2, prompt=20_000, completion=4_000, cached=8_000)
    assert card.picos(mix) == (12_000 * 2_500_000 + 8_000 * 1_250_000 + 4_000 * 10**7)


def test_total_and_round_div() -> None:
    assert total([TokenMix(1, 2, 3), TokenMix(4, 5, 6, 7)]) == TokenMix(5, 7, 9, 7)
    assert total([]) == TokenMix()
    assert [round_div(n, 2) for n in (5, 7, -5, -7, 4)] == [2, 4, -2, -4, 2]


def test_allocate_shares_exactly_in_proportion() -> None:
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert allocate(8_400_000, [4_800, 3_600]) == [4_800_000, 3_600_000]
    assert allocate(5, [0, 0]) == [3, 2]
    assert allocate(0, [3, 1]) == [0, 0]
    parts = allocate(1_000_003, [7, 11, 13, 0, 1])
    assert sum(parts) == 1_000_003 and parts[3] == 0


def test_monthly_amounts_and_payback() -> None:
    assert MonthlyRate.of(date(2026, 1, 1), date(2026, 3, 31)).of_amount(300) == 100  # 3 months
    assert MonthlyRate.of(date(2026, 2, 1), date(2026, 2, 28)).of_amount(1461) == 1461
    # 30 loose days: per average month of 365.25 / 12 days
    thirty_days = MonthlyRate.of(date(2026, 1, 10), date(2026, 2, 8))
    assert thirty_days.of_amount(30_000) == 30_438  # 30,437.5, half to even
    assert payback(1_000, 300) == 3.33
    assert payback(1_000, 0) is None


def test_models_know_windows_capabilities_makers_and_hosts(directory: ModelDirectory) -> None:
    gpt_4o = model(directory, "gpt-4o")
    assert (gpt_4o.family, gpt_4o.maker_host, gpt_4o.context_window) == ("openai", True, 128_000)
    assert gpt_4o.capabilities["supports_vision"] is True
    on_openrouter = model(directory, "openrouter/openai/gpt-4o")
    assert on_openrouter.identity == gpt_4o.identity and not on_openrouter.maker_host
    llama = model(directory, "groq:llama-3.3-70b-versatile")
    assert (llama.family, llama.maker_host) == ("meta", False)
    assert model(directory, "gpt-3.5-turbo").context_window == 16_385
    # a model LiteLLM knows but genai-prices gives no window for
    assert model(directory, "mistral/mistral-large").context_window == (
        reference_facts()[("mistral", "mistral-large")].context_window
    )
    assert directory.find("no-such-model") is None
