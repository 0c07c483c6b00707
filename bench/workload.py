"""What the benchmarks send: usage events, request bodies and the model-name mix, all seeded."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import orjson
from genai_prices.data_snapshot import get_snapshot

from margindash.pricing.catalogue import TokenCounts
from margindash.reports.periods import add_months, month_bounds

# Model names as apps commonly report them (the single-event and batch bodies cycle through
# these, so every request exercises name resolution and pricing, not one cached name).
HTTP_MODELS = (
    "gpt-4o-mini",
    "gpt-4o-2024-08-06",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-latest",
    "gemini-2.0-flash",
    "openai/gpt-4o-mini",
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "deepseek-chat",
)
FEATURES = ("chat", "search", "summarise", "agent", "extract")

# Spellings seen in the wild that a catalogue id alone would not cover: dated snapshots,
# Bedrock ids and ARNs, OpenRouter and Vertex prefixes, stray case and whitespace.
REAL_WORLD_NAMES = (
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "gpt-4o-2024-11-20",
    "GPT-4o-mini ",
    "gpt-4.1-mini-2025-04-14",
    "o3-mini-2025-01-31",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022",
    "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-20250514",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
    "us.meta.llama3-1-70b-instruct-v1:0",
    "amazon.nova-lite-v1:0",
    "openai/gpt-4o-mini",
    "anthropic/claude-3.5-sonnet",
    "google/gemini-2.0-flash-001",
    "meta-llama/llama-3.1-8b-instruct",
    "mistralai/mistral-small",
    "deepseek/deepseek-chat",
    "models/gemini-2.0-flash",
    "models/gemini-1.5-pro-002",
    "gemini-2.5-flash",
    "mistral-large-latest",
    "deepseek-reasoner",
    "grok-3-mini",
    "llama-3.3-70b-versatile",
    "my-internal-finetune-v3",  # unknown: exercises the unpriced path
)
_CATALOGUE_PROVIDERS = ("openai", "anthropic", "google", "aws", "mistral", "deepseek", "x-ai")
_OPENROUTER_SAMPLE = 120


def single_event_template(index: int) -> bytes:
    """A one-event body with `%s` for the request id and `%d` for the customer number."""
    event = {
        "request_id": "@RID@",
        "customer_id": "@CUST@",
        "model_name": HTTP_MODELS[index % len(HTTP_MODELS)],
        "prompt_tokens": 1200 + 37 * index,
        "completion_tokens": 300 + 11 * index,
        "cached_tokens": 200,
        "feature": FEATURES[index % len(FEATURES)],
        "metadata": {"env": "bench"},
    }
    return _placeholders(orjson.dumps(event))


def batch_template(size: int) -> bytes:
    """A `{"events": [...]}` body of `size` events with `%(b)s` for a per-request batch id."""
    events = [
        {
            "request_id": f"@B@-{i}",
            "customer_id": f"c{(i * 7919) % 10_000}",
            "model_name": HTTP_MODELS[i % len(HTTP_MODELS)],
            "prompt_tokens": 800 + (i * 37) % 4000,
            "completion_tokens": 100 + (i * 11) % 900,
            "feature": FEATURES[i % len(FEATURES)],
        }
        for i in range(size)
    ]
    return orjson.dumps({"events": events}).replace(b"%", b"%%").replace(b"@B@", b"%(b)s")


def _placeholders(body: bytes) -> bytes:
    body = body.replace(b"%", b"%%")
    return body.replace(b'"@RID@"', b'"%s"').replace(b'"@CUST@"', b'"c%d"')


@dataclass(frozen=True, slots=True)
class PricingInput:
    """One event as the pricer sees it."""

    model_name: str
    provider: str | None
    tokens: TokenCounts
    at: datetime


def pricing_names() -> list[tuple[str, str | None]]:
    """(model name, provider hint) pairs an app could send.

    Catalogue ids of the main providers and a sample of OpenRouter's come with their provider,
    as an SDK wrapper would send them; ids that genai-prices itself cannot look up (legacy or
    pattern-only entries such as `ft:gpt-4o`) are left out, since no app sends them. The
    real-world spellings come without a hint.
    """
    snapshot = get_snapshot()
    rng = random.Random(7)
    names: set[tuple[str, str | None]] = set()
    for provider in snapshot.providers:
        ids = sorted(m.id for m in provider.models)
        if provider.id == "openrouter":
            ids = rng.sample(ids, min(_OPENROUTER_SAMPLE, len(ids)))
        elif provider.id not in _CATALOGUE_PROVIDERS:
            continue
        for model_id in ids:
            try:
                snapshot.find_provider_model(model_id, None, provider.id, None)
            except LookupError:
                continue
            names.add((model_id, provider.id))
    return sorted(names, key=str) + [(name, None) for name in REAL_WORLD_NAMES]


def pricing_inputs(count: int, *, seed: int = 1) -> list[PricingInput]:
    """`count` events over the name mix; a few names carry most traffic (Zipf-like weights)."""
    rng = random.Random(seed)
    names = pricing_names()
    rng.shuffle(names)
    weights = [1 / (rank + 1) for rank in range(len(names))]
    now = datetime.now(UTC)
    inputs = []
    for name, provider in rng.choices(names, weights=weights, k=count):
        prompt = rng.randint(50, 20_000)
        completion = rng.randint(10, 2_000)
        cached = rng.choice((0, 0, prompt // 2))
        inputs.append(
            PricingInput(
                model_name=name,
                provider=provider,
                tokens=TokenCounts(prompt, completion, cached),
                at=now - timedelta(seconds=rng.randint(0, 30 * 86_400)),
            )
        )
    return inputs


@dataclass(frozen=True, slots=True)
class PnlDataset:
    """Events for one month over `customers` customers, each with two features and two models."""

    customers: int
    month: date  # first day of the month
    seed: int = 3

    def events(
        self, count: int, *, start: int, span: tuple[int, int]
    ) -> Iterator[dict[str, object]]:
        """Events number `start` to `start + count` (deterministic for a given seed).

        Events `span[0]` to `span[1]` cover the whole month in time order, as a back-fill of
        a month's logs would arrive.
        """
        rng = random.Random(self.seed * 1_000_003 + start)
        days = month_bounds(self.month.year, self.month.month)[1].day
        first = datetime(self.month.year, self.month.month, 1, tzinfo=UTC)
        seconds_per_event = days * 86_400 / (span[1] - span[0])
        weights = _customer_weights(self.customers)
        customers = rng.choices(range(self.customers), cum_weights=weights, k=count)
        for offset, customer in enumerate(customers):
            n = start + offset
            profile = rng.randrange(2)
            prompt = rng.randint(100, 8_000)
            event: dict[str, object] = {
                "request_id": f"pnl-{n}",
                "customer_id": f"cust-{customer:05d}",
                "model_name": HTTP_MODELS[(customer + 3 * profile) % len(HTTP_MODELS)],
                "feature": FEATURES[(customer + profile) % len(FEATURES)],
                "prompt_tokens": prompt,
                "completion_tokens": rng.randint(20, 1_500),
                "cached_tokens": prompt // 4 if profile else 0,
                "timestamp": (
                    first + timedelta(seconds=(n - span[0] + rng.random()) * seconds_per_event)
                ).isoformat(),
            }
            if rng.random() < 0.3:
                event["revenue_amount_cents"] = rng.randint(0, 12)
            yield event


def _customer_weights(customers: int) -> list[float]:
    """Cumulative Zipf-like weights (s = 0.8): a long tail of small customers, a few big ones."""
    total, cumulative = 0.0, []
    for rank in range(customers):
        total += 1 / (rank + 1) ** 0.8
        cumulative.append(total)
    return cumulative


def previous_month() -> date:
    """The first day of last month (UTC): a complete month for the P&L."""
    return add_months(datetime.now(UTC).date(), -1)
