"""A realistic demo data set: ~50 customers, 6 features, 8 models, 90 days, with revenue.

One month (by default the last complete one) is calibrated to the product brief's sample
numbers, so the dashboard and API show them exactly: org revenue $12,480.00 and cost $8,340.00
(margin 33.17%), Plexo Health $233.25 / $277.20 (-18.84%), Helix Robotics $134.29 / $127.31
(5.20%), Northwind Labs $480.00 / $564.00 (-17.50%). Everything else is seeded random data.
Costs come from the real price catalogue at each event's timestamp, so the calibration tops
each customer up with a few exactly-sized events.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from margindash.ledger.ingest import UsageIngestor
from margindash.ledger.revenue import record_revenue
from margindash.money import NANOS_PER_CENT
from margindash.orgs.service import Org
from margindash.pricing.catalogue import TokenCounts
from margindash.reports.periods import add_months, month_bounds

FEATURES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[str, ...]]] = {
    # feature: (prompt token range, completion token range, models used)
    "summarize": ((30_000, 110_000), (1_000, 6_000), ("gpt-4o", "claude-sonnet-4-0")),
    "translate": ((10_000, 60_000), (10_000, 40_000), ("gpt-4o", "mistral-large-latest")),
    "image_generation": ((2_000, 8_000), (30_000, 90_000), ("gemini-2.5-flash", "gpt-4o")),
    "chat": ((20_000, 90_000), (1_000, 4_000), ("claude-sonnet-4-0", "claude-3-5-haiku-latest")),
    "classify": ((2_000, 20_000), (5, 50), ("gemini-2.0-flash", "mistral-small-latest")),
    "extract": ((20_000, 100_000), (1_000, 6_000), ("gpt-4o-mini", "claude-sonnet-4-0")),
}
# How often each feature is used (classification is frequent but cheap).
FEATURE_WEIGHTS = {
    "summarize": 5,
    "translate": 3,
    "image_generation": 2,
    "chat": 5,
    "classify": 2,
    "extract": 3,
}
FIXED_CUSTOMERS = {
    # customer: (revenue, cost) of the calibrated month, in cents
    "plexo-health": (23_325, 27_720),
    "helix-robotics": (13_429, 12_731),
    "northwind-labs": (48_000, 56_400),
}
# This month's image generation spend: the brief's budget (600.00) shows at 91%.
IMAGE_BUDGET_CENTS = 60_000
IMAGE_SPEND_CENTS = 54_600
ORG_REVENUE_CENTS = 1_248_000
ORG_COST_CENTS = 834_000
CUSTOMER_COUNT = 50
DAYS = 90
_TOPUP_COARSE = ("gpt-4o", TokenCounts(0, 1))
_TOPUP_CHUNK = 16_000
_TOPUP_FINE = "gemini-2.0-flash"
_NAMES = [
    "acme-corp",
    "aurora-bio",
    "bluefin-ai",
    "cobalt-legal",
    "crescent-health",
    "delta-freight",
    "ember-labs",
    "fjord-analytics",
    "granite-insure",
    "harbor-retail",
    "ion-energy",
    "juniper-edu",
    "kestrel-media",
    "lumen-finance",
    "meridian-travel",
    "nimbus-games",
    "orchid-hr",
    "polaris-gov",
    "quartz-security",
    "redwood-realty",
    "sable-logistics",
    "tidal-fintech",
    "umbra-design",
    "vertex-pharma",
    "willow-care",
    "xenon-robotics",
    "yarrow-foods",
    "zephyr-mobility",
    "atlas-insights",
    "beacon-support",
    "cinder-ops",
    "dune-markets",
    "evergreen-law",
    "falcon-devices",
    "glacier-data",
    "helios-solar",
    "indigo-commerce",
    "jade-telecom",
    "keystone-bank",
    "lattice-research",
    "mosaic-marketing",
    "nova-clinics",
    "onyx-studios",
    "prism-analytics",
    "quill-publishing",
    "river-health",
    "summit-hr",
    "terra-agritech",
]


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What the demo loaded."""

    events: int
    revenue_entries: int
    calibrated_month: str
    first_day: date
    last_day: date


def default_month(today: date) -> date:
    """The calibrated month: the last complete month before `today`."""
    return add_months(today.replace(day=1), -1)


def load_demo(
    ingestor: UsageIngestor, *, org: Org, today: date | None = None, month: date | None = None
) -> DemoSummary:
    """Generate and store the demo data for `org` (seeded: the same every time)."""
    today = today or datetime.now(UTC).date()
    month = month or default_month(today)
    first_day = today - timedelta(days=DAYS - 1)
    if month < first_day.replace(day=1) or month > today:
        raise ValueError("the calibrated month must lie within the last 90 days")
    rng = random.Random(20260214)
    targets = _monthly_targets(rng)
    builder = _EventBuilder(ingestor, org, rng)
    events = 0
    revenue: list[dict[str, Any]] = []
    this_month = today.replace(day=1)
    for month_start in _months(first_day, today):
        calibrated = month_start == month
        # This month's image generation is booked separately, to a calibrated total.
        images_apart = month_start == this_month and not calibrated
        features = [f for f in FEATURES if not (images_apart and f == "image_generation")]
        start, end = month_bounds(month_start.year, month_start.month)
        days = [d for d in _days(max(start, first_day), min(end, today))]
        for customer, (revenue_cents, cost_cents) in targets.items():
            if not calibrated:
                revenue_cents, cost_cents = _vary(rng, customer, revenue_cents, cost_cents)
                cost_cents = cost_cents * len(days) // (end.day)
            batch = builder.customer_month(
                customer, days, cost_cents * NANOS_PER_CENT, calibrated, features
            )
            events += builder.store(batch)
            revenue.append(
                {
                    "revenue_id": f"demo-{customer}-{month_start:%Y-%m}",
                    "customer_id": customer,
                    "amount_cents": revenue_cents,
                    "month": f"{month_start:%Y-%m}",
                    "description": "subscription",
                }
            )
        if images_apart:
            batch = builder.feature_month(
                "image_generation", list(targets), days, IMAGE_SPEND_CENTS * NANOS_PER_CENT
            )
            events += builder.store(batch)
    record_revenue(ingestor.engine, org=org, raw_entries=revenue, source="demo")
    _create_budgets(ingestor, org)
    return DemoSummary(events, len(revenue), f"{month:%Y-%m}", first_day, today)


def _create_budgets(ingestor: UsageIngestor, org: Org) -> None:
    """The brief's budget, as its budget file spells it, and an org-wide monthly budget."""
    from margindash.budgets.service import create_budget
    from margindash.budgets.spec import parse_budget

    brief = {
        "budget": {
            "feature": "image_generation",
            "monthly_limit": f"{IMAGE_BUDGET_CENTS / 100:.2f}",
            "warning_threshold_percent": 75,
            "critical_threshold_percent": 90,
            "notify_email": "eng-ops@example.com",
        }
    }
    org_wide = {
        "name": "All AI spend",
        "scope": {"type": "org"},
        "period": "month",
        "limit_usd": "15000.00",
        "thresholds": [75, 90, 100],
        "action": "warn",
        "notify": {"emails": ["finance@example.com"]},
    }
    for raw in (brief, org_wide):
        create_budget(
            ingestor.engine, org_id=org.id, spec=parse_budget(raw), pricer=ingestor.pricer
        )


def _monthly_targets(rng: random.Random) -> dict[str, tuple[int, int]]:
    """(revenue, cost) in cents per customer for the calibrated month, summing to the org's."""
    others = _NAMES[: CUSTOMER_COUNT - len(FIXED_CUSTOMERS)]
    assert len(others) == CUSTOMER_COUNT - len(FIXED_CUSTOMERS)
    revenue_left = ORG_REVENUE_CENTS - sum(r for r, _ in FIXED_CUSTOMERS.values())
    cost_left = ORG_COST_CENTS - sum(c for _, c in FIXED_CUSTOMERS.values())
    weights = [rng.lognormvariate(0, 0.8) for _ in others]
    revenues = _apportion(revenue_left, weights)
    # A few customers lose money; most keep 20-60%.
    margins = [
        rng.uniform(-0.35, -0.05) if i % 9 == 4 else rng.uniform(0.2, 0.6)
        for i in range(len(others))
    ]
    raw_costs = [r * (1 - m) for r, m in zip(revenues, margins, strict=True)]
    costs = _apportion(cost_left, raw_costs)
    targets = dict(FIXED_CUSTOMERS)
    targets.update(zip(others, zip(revenues, costs, strict=True), strict=True))
    return targets


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Integers proportional to `weights` that sum exactly to `total`."""
    scale = total / sum(weights)
    parts = [int(w * scale) for w in weights]
    for i in range(total - sum(parts)):
        parts[i % len(parts)] += 1
    return parts


def _vary(rng: random.Random, customer: str, revenue: int, cost: int) -> tuple[int, int]:
    if customer == "plexo-health":  # negative two months in a row: the brief's rule
        return revenue, int(cost * rng.uniform(1.05, 1.2))
    return int(revenue * rng.uniform(0.9, 1.1)), int(cost * rng.uniform(0.8, 1.15))


def _months(first: date, last: date) -> Iterator[date]:
    cursor = first.replace(day=1)
    while cursor <= last:
        yield cursor
        cursor = add_months(cursor, 1)


def _days(first: date, last: date) -> Iterator[date]:
    while first <= last:
        yield first
        first += timedelta(days=1)


class _EventBuilder:
    """Makes one customer's events for a month, priced as ingestion will price them."""

    def __init__(self, ingestor: UsageIngestor, org: Org, rng: random.Random):
        self.ingestor = ingestor
        self.org = org
        self.rng = rng
        self.sequence = 0
        self.now = datetime.now(UTC) - timedelta(minutes=1)

    def price(self, model: str, tokens: TokenCounts, at: datetime) -> int:
        quote = self.ingestor.pricer.price(
            org_id=self.org.id, model_name=model, provider=None, tokens=tokens, at=at
        )
        if quote.cost_nanos is None:
            raise RuntimeError(f"demo model {model} is not in the price catalogue")
        return quote.cost_nanos

    def customer_month(
        self,
        customer: str,
        days: list[date],
        target_nanos: int,
        exact: bool,
        features: list[str],
    ) -> list[dict[str, Any]]:
        """One customer's events over `days`, costing about (or, if `exact`, exactly) target."""
        weights = [FEATURE_WEIGHTS[f] for f in features]
        events: list[dict[str, Any]] = []
        spent = 0
        # Stop a little short of the target so the top-up events land on it exactly.
        while days:
            feature = self.rng.choices(features, weights)[0]
            event, cost = self._random_event(customer, feature, days)
            if spent + cost > target_nanos * 0.995:
                break
            spent += cost
            events.append(event)
        if exact and days:
            events.extend(self._top_up(customer, days, target_nanos - spent))
        return events

    def feature_month(
        self, feature: str, customers: list[str], days: list[date], target_nanos: int
    ) -> list[dict[str, Any]]:
        """One feature's events over `days` across customers, costing exactly `target_nanos`."""
        events: list[dict[str, Any]] = []
        spent = 0
        while days:
            event, cost = self._random_event(self.rng.choice(customers), feature, days)
            if spent + cost > target_nanos * 0.995:
                break
            spent += cost
            events.append(event)
        if days:
            events.extend(self._top_up(customers[0], days, target_nanos - spent, feature, feature))
        return events

    def _random_event(
        self, customer: str, feature: str, days: list[date]
    ) -> tuple[dict[str, Any], int]:
        at = self._moment(days)
        (p_lo, p_hi), (c_lo, c_hi), models = FEATURES[feature]
        model = self.rng.choice(models)
        prompt, completion = self.rng.randint(p_lo, p_hi), self.rng.randint(c_lo, c_hi)
        cached = prompt // 4 if self._caches(model, at) and self.rng.random() < 0.3 else 0
        tokens = TokenCounts(prompt, completion, cached)
        return self._event(customer, feature, model, tokens, at), self.price(model, tokens, at)

    def _caches(self, model: str, at: datetime) -> bool:
        # Cached tokens only where their price keeps costs on a 25 nano-USD grid (top-up).
        return self.price(model, TokenCounts(1, 0, 1), at) % 25 == 0

    def _top_up(
        self,
        customer: str,
        days: list[date],
        residual: int,
        coarse_feature: str = "summarize",
        fine_feature: str = "classify",
    ) -> list[dict[str, Any]]:
        at = min(datetime.combine(days[-1], time(12, 0), UTC), self.now)
        model, unit = _TOPUP_COARSE
        step = self.price(model, unit, at)
        prompt = TokenCounts(4_000, 0)
        prompt_cost = self.price(model, prompt, at)
        chunks = -(-(residual // step) // _TOPUP_CHUNK)
        if residual - chunks * prompt_cost < step * chunks:
            chunks = 0  # too little left for a coarse event: the fine one does it all
        residual -= chunks * prompt_cost
        outputs, residual = divmod(residual, step) if chunks else (0, residual)
        events = []
        for i in range(chunks):
            completion = outputs // chunks + (1 if i < outputs % chunks else 0)
            tokens = TokenCounts(prompt.prompt, completion)
            events.append(self._event(customer, coarse_feature, model, tokens, at))
        input_price = self.price(_TOPUP_FINE, TokenCounts(1, 0), at)
        cached_price = self.price(_TOPUP_FINE, TokenCounts(1, 0, 1), at)
        uncached, rest = divmod(residual, input_price)
        cached, rest = divmod(rest, cached_price)
        if rest:
            raise RuntimeError(f"demo calibration left {rest} nano-USD unbooked")
        if uncached or cached:
            tokens = TokenCounts(uncached + cached, 0, cached)
            events.append(self._event(customer, fine_feature, _TOPUP_FINE, tokens, at))
        return events

    def _moment(self, days: list[date]) -> datetime:
        day = self.rng.choice(days)
        seconds = self.rng.randint(8 * 3600, 20 * 3600)
        # Never in the future: today's events happen before now.
        return min(datetime.combine(day, time(0), UTC) + timedelta(seconds=seconds), self.now)

    def _event(
        self, customer: str, feature: str, model: str, tokens: TokenCounts, at: datetime
    ) -> dict[str, Any]:
        self.sequence += 1
        return {
            "request_id": f"demo-{self.sequence:07d}",
            "customer_id": customer,
            "feature": feature,
            "model_name": model,
            "prompt_tokens": tokens.prompt,
            "completion_tokens": tokens.completion,
            "cached_tokens": tokens.cached,
            "timestamp": at.isoformat(),
        }

    def store(self, events: list[dict[str, Any]]) -> int:
        stored = 0
        for start in range(0, len(events), 5_000):
            report = self.ingestor.ingest_now(
                org=self.org, raw_events=events[start : start + 5_000]
            )
            rejected = [r for r in report.results if r.status == "rejected"]
            if rejected:
                raise RuntimeError(f"demo event rejected: {rejected[0].errors}")
            stored += report.count("accepted")
        return stored
