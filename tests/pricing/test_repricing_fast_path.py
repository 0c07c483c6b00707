"""Re-pricing prices most events with integer prices it keeps per name and day, not through
`Pricer.price`: every event it re-prices must still get exactly what `Pricer.price` says."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from margindash.db.tables import usage_events
from margindash.ledger.repricing import RepriceScope, reprice_events
from margindash.pricing.catalogue import TokenCounts
from margindash.pricing.overrides import add_override
from margindash.pricing.service import Pricer
from margindash.pricing.sync import sync_prices
from tests.conftest import Tenant
from tests.pricing.payloads import CatalogueServer, catalogue_doc, set_price
from tests.pricing.test_repricing import assert_rollups_match_events

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
FIRST_DAY = TODAY - timedelta(days=6)
NEW_CATALOGUE_AT = TODAY - timedelta(days=3, hours=-13, minutes=-17)  # 13:17 UTC that day
MODELS = (
    "gpt-4o-mini",  # a discount applies to OpenAI models
    "gpt-3.5-turbo",  # prices change with the new catalogue
    "o3-mini",
    "claude-3-5-haiku-latest",  # cache reads and writes priced apart
    "claude-sonnet-4-5",  # tiered: dearer above 200k prompt tokens
    "deepseek-chat",  # cheaper from 16:30 to 00:30 UTC
    "acme-llama",  # the org's own price
    "mystery-model",  # no price at all
)


def random_event(rng: random.Random, n: int) -> dict[str, Any]:
    prompt = rng.choice((rng.randrange(0, 5_000), rng.randrange(150_000, 400_000)))
    cached = rng.randrange(0, prompt + 1) if rng.random() < 0.5 else 0
    cache_write = rng.randrange(0, prompt - cached + 1) if rng.random() < 0.5 else 0
    completion = rng.randrange(0, 50_000)
    reasoning = rng.randrange(0, completion + 1) if rng.random() < 0.5 else 0
    at = FIRST_DAY + timedelta(seconds=rng.randrange(6 * 86_400), microseconds=rng.randrange(10**6))
    if n % 10 == 0:  # right at DeepSeek's price changes
        day = FIRST_DAY.date() + timedelta(days=rng.randrange(6))
        change = datetime.combine(day, rng.choice((time(0, 30), time(16, 30))), UTC)
        at = change - timedelta(microseconds=rng.choice((0, 1)))
    return {
        "request_id": f"r{n}",
        "customer_id": rng.choice(("acme", "globex", "initech")),
        "model_name": "deepseek-chat" if n % 10 == 0 else rng.choice(MODELS),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": cached,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
        "timestamp": at.isoformat(),
        "revenue_amount_cents": rng.randrange(0, 100),
    }


def stored(engine: Engine) -> dict[str, Any]:
    t = usage_events
    with engine.connect() as conn:
        return {row.request_id: row for row in conn.execute(select(t))}


def test_every_repriced_event_costs_what_pricer_price_says(
    client: TestClient, engine: Engine, tenant: Tenant, prices_server: CatalogueServer
) -> None:
    sync_prices(engine, source=prices_server.url, triggered_by="test", now=FIRST_DAY)
    client.app.state.services.pricer.reload()  # type: ignore[attr-defined]
    rng = random.Random(7)
    events = [random_event(rng, n) for n in range(600)]
    for first in range(0, len(events), 100):
        response = client.post(
            "/v1/usage", json={"events": events[first : first + 100]}, headers=tenant.ingest
        )
        assert response.json()["accepted"] == 100, response.text

    # New prices: a discount, the org's own price, and a catalogue version from mid-day on.
    add_override(engine, org_id=tenant.org.id, model=None, provider="openai", discount_pct="7.5")
    add_override(
        engine,
        org_id=tenant.org.id,
        model="acme-llama",
        provider=None,
        input_per_mtok="0.333",
        output_per_mtok="1.777",
        cached_input_per_mtok="0.0333",
        cache_write_per_mtok="0.4",
    )
    cheaper = catalogue_doc()
    set_price(cheaper, "openai", "o3-mini", "input_mtok", 1.05)
    set_price(cheaper, "openai", "gpt-3.5-turbo", "output_mtok", 1.3)
    prices_server.serve(cheaper)
    result = sync_prices(
        engine, source=prices_server.url, triggered_by="test", now=NEW_CATALOGUE_AT
    )
    assert result.status == "success", result.error

    before = stored(engine)
    everything = RepriceScope(date_from=FIRST_DAY.date(), date_to=TODAY.date())
    preview = reprice_events(
        Pricer(engine), org=tenant.org, scope=everything, actor="t", reason="r", dry_run=True
    )
    done = reprice_events(Pricer(engine), org=tenant.org, scope=everything, actor="t", reason="r")
    after = stored(engine)

    pricer = Pricer(engine)
    changed = 0
    for request_id, old in before.items():
        quote = pricer.price(
            org_id=tenant.org.id,
            model_name=old.model_name,
            provider=old.provider,
            tokens=TokenCounts(
                old.prompt_tokens,
                old.completion_tokens,
                old.cached_tokens,
                old.cache_write_tokens,
                old.reasoning_tokens,
            ),
            at=old.occurred_at,
        )
        new = after[request_id]
        if quote.cost_nanos is None:  # no price now: the event keeps what it had
            expected = (old.model, old.provider, old.cost_nanos, old.price_ref)
        else:
            expected = (quote.model, quote.provider, quote.cost_nanos, quote.price_ref)
        assert (new.model, new.provider, new.cost_nanos, new.price_ref) == expected, request_id
        changed += (new.model, new.cost_nanos) != (old.model, old.cost_nanos)
    assert done.examined == preview.examined == len(events)
    assert (done.changed, done.cost_after) == (preview.changed, preview.cost_after)
    assert changed > 200 and done.changed >= changed
    assert_rollups_match_events(engine)
