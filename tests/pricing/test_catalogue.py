"""Pricing: name normalisation, and the fast integer path against genai-prices itself."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from genai_prices import calc_price
from genai_prices import types as gp

from margindash.money import to_nanos
from margindash.pricing.catalogue import (
    Catalogue,
    CatalogueModel,
    NotPricedPerToken,
    TokenCounts,
    genai_usage,
)
from margindash.pricing.history import CatalogueHistory
from margindash.pricing.overrides import OrgPricingRules
from margindash.pricing.service import OrgPrices

AT = datetime(2026, 2, 14, 15, 4, 5, tzinfo=UTC)
CATALOGUE = Catalogue()
HISTORY = CatalogueHistory.of(CATALOGUE)


@pytest.mark.parametrize(
    ("name", "provider", "expected"),
    [
        ("gpt-4o-mini", None, "openai:gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", None, "openai:gpt-4o-mini"),
        ("GPT-4o-mini ", None, "openai:gpt-4o-mini"),
        ("openai/gpt-4o-mini", None, "openai:gpt-4o-mini"),
        ("models/gemini-2.0-flash", None, "google:gemini-2.0-flash"),
        (
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            None,
            "aws:regional.anthropic.claude-3-5-haiku-20241022-v1:0",
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            None,
            "aws:regional.anthropic.claude-3-5-haiku-20241022-v1:0",
        ),
        ("anthropic/claude-3.5-haiku", None, "anthropic:claude-3-5-haiku-latest"),
        ("meta-llama/llama-3.3-70b-instruct", None, "openrouter:meta-llama/llama-3.3-70b-instruct"),
        ("gpt-4o", "azure", "azure:gpt-4o"),
        ("claude-3-5-haiku-20241022", "Anthropic", "anthropic:claude-3-5-haiku-latest"),
    ],
)
def test_names_resolve(name: str, provider: str | None, expected: str) -> None:
    model = CATALOGUE.resolve(name, provider)
    assert model is not None and model.key == expected


@pytest.mark.parametrize("name", ["gpt-4o-mini-2024-07-18", "GPT-4o-mini ", "openai/gpt-4o-mini"])
def test_every_spelling_of_gpt_4o_mini_costs_the_same(name: str) -> None:
    quote = OrgPrices(HISTORY, OrgPricingRules()).price(name, None, TokenCounts(120, 80), AT)
    assert quote.cost_nanos == 66_000  # $0.000066


def test_unknown_model_is_unpriced() -> None:
    quote = OrgPrices(HISTORY, OrgPricingRules()).price("acme-llama", None, TokenCounts(1, 1), AT)
    assert quote.cost_nanos is None and not quote.priced and quote.warnings


def _every_model() -> list[tuple[gp.Provider, gp.ModelInfo]]:
    return [(p, m) for p in CATALOGUE.providers for m in p.models]


def test_fast_path_equals_genai_prices_for_every_model() -> None:
    """Integer pricing must give exactly what genai-prices gives, rounded to the nano."""
    rng = random.Random(7)
    compared = 0
    for provider, info in _every_model():
        from margindash.pricing.catalogue import CatalogueModel

        model = CatalogueModel(provider.id, info.id, info, provider)
        for at in (datetime(2024, 6, 1, 3, tzinfo=UTC), AT):
            prompt = rng.choice([0, 10, 1_000, 150_000, 300_000])
            cached = rng.choice([0, prompt // 3])
            cache_write = rng.choice([0, prompt // 5])
            completion = rng.choice([0, 7, 2_000, 90_000])
            reasoning = rng.choice([0, completion // 2])
            tokens = TokenCounts(prompt, completion, cached, cache_write, reasoning)
            try:
                ours = CATALOGUE.cost_nanos(model, tokens, at)
            except NotPricedPerToken:
                continue
            try:
                theirs = calc_price(
                    genai_usage(tokens),
                    info.id,
                    provider_id=provider.id,
                    genai_request_timestamp=at,
                ).total_price
            except (LookupError, ValueError):
                theirs = info.get_prices(at).calc_price(genai_usage(tokens))["total_price"]
            assert ours == to_nanos(Decimal(theirs)), (provider.id, info.id, tokens, at)
            compared += 1
    assert compared > 2000


def test_tiered_price_switches_above_the_threshold() -> None:
    model = CATALOGUE.resolve("gemini-1.5-pro")
    assert model is not None
    small = CATALOGUE.cost_nanos(model, TokenCounts(128_000, 0), AT)
    large = CATALOGUE.cost_nanos(model, TokenCounts(128_001, 0), AT)
    assert small == 128_000 * 1_250  # $1.25 per 1M
    assert large == 128_001 * 2_500  # $2.50 per 1M above 128k


def test_price_history_prices_each_event_at_its_own_date() -> None:
    dated = [
        (p, m)
        for p, m in _every_model()
        if isinstance(m.prices, list)
        and any(isinstance(c.constraint, gp.StartDateConstraint) for c in m.prices)
        and all(isinstance(c.prices.input_mtok, Decimal) for c in m.prices)
    ]
    assert dated, "the catalogue has effective-dated prices"
    provider, info = dated[0]
    assert isinstance(info.prices, list)
    change = next(c for c in info.prices if isinstance(c.constraint, gp.StartDateConstraint))
    assert isinstance(change.constraint, gp.StartDateConstraint)
    start = change.constraint.start_date
    from datetime import timedelta

    from margindash.pricing.catalogue import CatalogueModel

    model = CatalogueModel(provider.id, info.id, info, provider)
    before = datetime.combine(start - timedelta(days=1), datetime.min.time(), UTC)
    after = datetime.combine(start, datetime.min.time(), UTC)
    tokens = TokenCounts(1_000_000, 0)
    assert CATALOGUE.cost_nanos(model, tokens, after) == to_nanos(
        info.get_prices(after).input_mtok  # type: ignore[arg-type]
    )
    assert CATALOGUE.cost_nanos(model, tokens, before) == to_nanos(
        info.get_prices(before).input_mtok  # type: ignore[arg-type]
    )


def test_time_of_day_prices_change_at_the_exact_instant_genai_prices_says() -> None:
    """The catalogue keeps one rate per stretch of the day between price changes: at each
    change, a microsecond either side, and every ten minutes it picks genai-prices' price."""
    catalogue = Catalogue()
    timed = [
        CatalogueModel(provider.id, info.id, info, provider)
        for provider in catalogue.providers
        for info in provider.models
        if not isinstance(info.prices, gp.ModelPrice)
        and any(isinstance(c.constraint, gp.TimeOfDateConstraint) for c in info.prices)
    ]
    assert any(model.model_id == "deepseek-chat" for model in timed)
    day = datetime(2026, 3, 2, tzinfo=UTC)
    for model in timed:
        changes = {
            datetime.combine(day.date(), t.replace(tzinfo=None), UTC) + timedelta(microseconds=d)
            for c in model.info.prices
            if isinstance(c.constraint, gp.TimeOfDateConstraint)
            for t in (c.constraint.start_time, c.constraint.end_time)
            for d in (-1, 0, 1)
        }
        every_ten_minutes = {day + timedelta(minutes=m) for m in range(0, 1440, 10)}
        for at in sorted(changes | every_ten_minutes):
            assert catalogue.rate(model, at).price == model.info.get_prices(at), (model.key, at)


def test_time_of_day_prices_follow_the_hour_and_agree_with_genai_prices() -> None:
    """DeepSeek is cheaper from 16:30 to 00:30 UTC: each instant gets its own hour's price."""
    catalogue = Catalogue()
    model = catalogue.resolve("deepseek-chat")
    assert model is not None
    tokens = TokenCounts(1_000_000, 100_000)
    day = datetime(2026, 3, 2, tzinfo=UTC)
    costs = {}
    for hour, minute in ((15, 0), (16, 29), (16, 31), (23, 59), (0, 31)):
        at = day.replace(hour=hour, minute=minute)
        expected = calc_price(
            genai_usage(tokens), "deepseek-chat", provider_id="deepseek", genai_request_timestamp=at
        ).total_price
        costs[(hour, minute)] = catalogue.cost_nanos(model, tokens, at)
        assert costs[(hour, minute)] == to_nanos(Decimal(expected)), at
    assert costs[(15, 0)] == costs[(16, 29)] == costs[(0, 31)]
    assert costs[(16, 31)] == costs[(23, 59)] < costs[(15, 0)]
