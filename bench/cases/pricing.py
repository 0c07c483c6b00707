"""Pricing throughput in-process: margindash's Pricer against genai-prices' calc_price."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import genai_prices
from genai_prices import types as gp
from harness import Context
from results import Figure, Section, Target
from workload import PricingInput, pricing_inputs, pricing_names

from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.orgs.service import create_org
from margindash.pricing.catalogue import Catalogue, NotPricedPerToken, genai_usage
from margindash.pricing.service import Pricer

_TARGET_PER_S = 300_000.0
BASELINE = "genai_prices.calc_price"
_BATCH = 1_000  # events a request carries at most


@dataclass(slots=True)
class Rates:
    """Events per second of each repetition, by this thread's CPU time and by the wall clock.

    The figures use CPU time, which other work on a shared machine does not inflate; on an
    idle machine the two agree. The wall-clock rates go in the notes.
    """

    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    def measure(self, work: Callable[[], Any], count: int) -> None:
        cpu, wall = time.thread_time(), time.perf_counter()
        work()
        self.wall.append(count / (time.perf_counter() - wall))
        self.cpu.append(count / (time.thread_time() - cpu))


def _price_all(pricer: Pricer, org_id: str, inputs: Sequence[PricingInput]) -> int:
    priced = 0
    for event in inputs:
        quote = pricer.price(
            org_id=org_id,
            model_name=event.model_name,
            provider=event.provider,
            tokens=event.tokens,
            at=event.at,
        )
        priced += quote.cost_nanos is not None
    return priced


def _price_batches(pricer: Pricer, org_id: str, inputs: Sequence[PricingInput]) -> int:
    """As ingest prices a request: the org's prices looked up once per 1,000 events."""
    priced = 0
    for start in range(0, len(inputs), _BATCH):
        price = pricer.for_org(org_id).price
        for event in inputs[start : start + _BATCH]:
            quote = price(event.model_name, event.provider, event.tokens, event.at)
            priced += quote.cost_nanos is not None
    return priced


def _catalogue_all(catalogue: Catalogue, inputs: Sequence[PricingInput]) -> int:
    priced = 0
    for event in inputs:
        model = catalogue.resolve(event.model_name, event.provider)
        if model is None:
            continue
        try:
            catalogue.cost_nanos(model, event.tokens, event.at)
        except NotPricedPerToken:
            continue
        priced += 1
    return priced


def _calc_all(inputs: Sequence[tuple[PricingInput, gp.Usage]]) -> int:
    priced = 0
    for event, usage in inputs:
        try:
            genai_prices.calc_price(
                usage,
                event.model_name,
                provider_id=event.provider,
                genai_request_timestamp=event.at,
            )
        except LookupError:
            continue
        priced += 1
    return priced


def pricing(ctx: Context) -> Section:
    """Events priced per second over a realistic mix of model names."""
    s = ctx.sizes
    inputs = pricing_inputs(s.pricing_events)
    names = len(set(pricing_names()))
    section = Section(
        "Pricing throughput (in-process)",
        f"{s.pricing_events:,} events over {names} (model name, provider) pairs: the catalogue "
        "ids of OpenAI, Anthropic, Google, AWS Bedrock, Mistral, DeepSeek and xAI and a sample "
        "of OpenRouter's, sent with their provider as an SDK wrapper would (ids genai-prices "
        "itself cannot look up are left out), plus real-world spellings sent without one "
        "(dated snapshots, Bedrock ids and ARNs, `openai/…` and `models/…` prefixes, stray "
        "case, a Groq name, one unknown name); drawn with Zipf-like weights, with random token "
        "counts (a third with cached input) and timestamps over the last 30 days. "
        "margindash: `Pricer.for_org(org).price` (org rules, then the catalogue) with warm "
        "caches, as ingest prices a request: the org's rules and the catalogue looked up once "
        "per 1,000 events; `Pricer.price`, which looks them up for every event, and the first "
        "pass over a fresh Pricer are reported separately. Rates are "
        "events per second of the benchmark thread's CPU time (see the notes for wall-clock "
        "rates). Baseline: "
        f"`genai_prices.calc_price` on the first {s.pricing_baseline_events:,} of the same "
        "events (it is much slower, so fewer events suffice; inputs and `Usage` objects are "
        f"built before timing). {s.repetitions} repetitions each, interleaved.",
    )
    engine = make_engine(f"sqlite:///{ctx.workdir / 'pricing.db'}")
    try:
        upgrade(engine)
        org_id = create_org(engine, name="pricing").org.id
        cold_pricer = Pricer(engine)
        cold, warm, single, direct, base = Rates(), Rates(), Rates(), Rates(), Rates()
        cold.measure(lambda: _price_all(cold_pricer, org_id, inputs), len(inputs))
        pricer, catalogue = Pricer(engine), Catalogue()
        priced = _price_all(pricer, org_id, inputs)
        _catalogue_all(catalogue, inputs)
        sample = [(e, genai_usage(e.tokens)) for e in inputs[: s.pricing_baseline_events]]
        baseline_priced = _calc_all(sample)
        for _ in range(s.repetitions):
            warm.measure(lambda: _price_batches(pricer, org_id, inputs), len(inputs))
            single.measure(lambda: _price_all(pricer, org_id, inputs), len(inputs))
            direct.measure(lambda: _catalogue_all(catalogue, inputs), len(inputs))
            base.measure(lambda: _calc_all(sample), len(sample))
    finally:
        engine.dispose()
    section.figures += [
        Figure(
            "Pricer.for_org().price, warm caches",
            "events/s",
            warm.cpu,
            BASELINE,
            base.cpu,
            _target(),
        ),
        Figure("Pricer.price, warm caches", "events/s", single.cpu, BASELINE, base.cpu),
        Figure(
            "Catalogue.resolve + cost_nanos (no org rules)",
            "events/s",
            direct.cpu,
            BASELINE,
            base.cpu,
        ),
        Figure("Pricer.price, first pass (empty caches)", "events/s", cold.cpu, BASELINE, base.cpu),
    ]
    section.notes.append(
        "Wall-clock medians of the same runs: "
        + ", ".join(
            f"{name} {statistics.median(rates.wall):,.0f} events/s"
            for name, rates in (
                ("for_org().price warm", warm),
                ("Pricer.price warm", single),
                ("Catalogue", direct),
                ("first pass", cold),
                ("calc_price", base),
            )
        )
        + "."
    )
    margindash_share = _sample_share(pricer, org_id, [e for e, _ in sample])
    section.notes.append(
        f"Coverage: margindash priced {priced / len(inputs):.1%} of the events "
        f"({margindash_share:.1%} of the baseline's sample); genai-prices resolved "
        f"{baseline_priced / len(sample):.1%} of its sample. Events either side could not price "
        "are still timed (a failed look-up is part of the work)."
    )
    return section


def _target() -> Target:
    return Target(_TARGET_PER_S, at_least=True)


def _sample_share(pricer: Pricer, org_id: str, sample: Sequence[PricingInput]) -> float:
    return _price_all(pricer, org_id, sample) / len(sample) if sample else 0.0
