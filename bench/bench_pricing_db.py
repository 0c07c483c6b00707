"""The pricing database: full-catalogue sync time, re-pricing throughput, and pricing through the
catalogue history, each with a baseline measured in the same run.

    .venv/bin/python bench/bench_pricing_db.py [--quick]

`run(quick)` returns the figures as dicts with the fields of `results.Figure` (`name`, `unit`,
`values`, `baseline_name`, `baseline_values`, and `target` as the fields of `results.Target`
or None), so `bench/run.py` can turn them into a section.

- Sync: the full bundled genai-prices catalogue (2,300+ models, ~0.8 MB) served over loopback
  HTTP; every repetition is a real change (prices alternate), so it is fetched, parsed, checked,
  diffed against the catalogue in force and stored with all its price rows. Baseline:
  genai-prices' own `UpdatePrices.fetch()` of the same URL (download and parse, nothing else).
- Re-pricing: events over 12 models, 1,000 customers (log-uniform: a few large ones send most
  events) and 30 days, stored in time order, in a SQLite file; an OpenAI
  discount is added (then removed) and every event is re-priced with `reprice_events`, a third
  of them changing cost. Baseline: the same work with one UPDATE per changed event, as the
  first `ledger/repricing.py` did.
- Pricing: `Pricer.price` over the catalogue history of the database (seed plus one synced
  snapshot, events spread before and after it) against a Pricer over the bundled catalogue.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from genai_prices.update_prices import UpdatePrices
from sqlalchemy import Engine, select, update

from margindash.config import Settings
from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.db.tables import usage_events
from margindash.ledger.ingest import UsageIngestor, event_rules
from margindash.ledger.repricing import RepriceScope, reprice_events
from margindash.orgs.service import Org, create_org
from margindash.pricing.catalogue import Catalogue, TokenCounts
from margindash.pricing.overrides import add_override, delete_override
from margindash.pricing.payload import bundled_payload, to_plain
from margindash.pricing.service import Pricer
from margindash.pricing.snapshots import ensure_seeded
from margindash.pricing.sync import sync_prices
from margindash.pricing.validation import sentinel_prices

MODELS = (
    "gpt-4o-mini",
    "gpt-4o-2024-08-06",
    "gpt-4.1-mini",
    "o3-mini",
    "claude-3-5-haiku-latest",
    "claude-sonnet-4-5",
    "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    "gemini-2.0-flash",
    "models/gemini-2.5-flash",
    "deepseek-chat",
    "mistral-large-latest",
    "grok-3-mini",
)
SYNC_TARGET_S = 10.0
REPRICE_TARGET_PER_S = 50_000.0
PRICING_TARGET_PER_S = 300_000.0


@dataclass(frozen=True, slots=True)
class Sizes:
    repetitions: int
    reprice_events: int
    pricing_events: int


FULL = Sizes(repetitions=3, reprice_events=200_000, pricing_events=200_000)
QUICK = Sizes(repetitions=1, reprice_events=10_000, pricing_events=20_000)


def _figure(
    name: str,
    unit: str,
    values: list[float],
    baseline_name: str,
    baseline: list[float],
    target: tuple[float, bool] | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "unit": unit,
        "values": values,
        "baseline_name": baseline_name,
        "baseline_values": baseline,
        "target": None if target is None else {"bound": target[0], "at_least": target[1]},
    }


# --- sync ---------------------------------------------------------------------------------------


class _Served:
    body = b""


@contextmanager
def _server() -> Iterator[tuple[str, type[_Served]]]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(_Served.body)))
            self.end_headers()
            self.wfile.write(_Served.body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/data.json", _Served
    finally:
        httpd.shutdown()
        httpd.server_close()


def _catalogue_variant(raise_pct: int) -> bytes:
    """The bundled catalogue with every plain input price (but the sentinels') raised."""
    document = to_plain(bundled_payload().providers)
    sentinels = {(s.provider, s.model) for s in sentinel_prices()}
    for provider in document:
        for model in provider["models"]:
            if (provider["id"], model["id"]) in sentinels:
                continue
            prices = model["prices"]
            for entry in [prices] if isinstance(prices, dict) else [p["prices"] for p in prices]:
                if isinstance(entry.get("input_mtok"), str):
                    price = Decimal(entry["input_mtok"]) * (100 + raise_pct) / 100
                    entry["input_mtok"] = str(price)
    return orjson.dumps(document)


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    outcome = work()
    return time.perf_counter() - started, outcome


def sync_figures(sizes: Sizes, workdir: Path) -> list[dict[str, Any]]:
    engine = make_engine(f"sqlite:///{workdir / 'sync.db'}")
    upgrade(engine)
    ensure_seeded(engine)
    variants = [_catalogue_variant(1), _catalogue_variant(2)]
    changed, unchanged, baseline = [], [], []
    with _server() as (url, served):

        def sync() -> Any:
            return sync_prices(engine, source=url, triggered_by="bench")

        for rep in range(sizes.repetitions):
            served.body = variants[rep % 2]
            seconds, result = _timed(sync)
            assert result.status == "success", result.error
            changed.append(seconds)
            seconds, result = _timed(sync)
            assert result.status == "unchanged", result.error
            unchanged.append(seconds)
            baseline.append(_timed(UpdatePrices(url=url).fetch)[0])
    engine.dispose()
    name = "genai_prices UpdatePrices.fetch (download + parse only)"
    target = (SYNC_TARGET_S, False)
    return [
        _figure("full-catalogue sync, changed", "s", changed, name, baseline, target),
        _figure("full-catalogue sync, unchanged", "s", unchanged, name, baseline, None),
    ]


# --- re-pricing ---------------------------------------------------------------------------------


def _load_events(engine: Engine, org: Org, count: int) -> None:
    """`count` events over 30 days, stored in the order they happened, as ingestion does."""
    rng = random.Random(11)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    offsets = sorted(rng.randrange(30 * 86_400) for _ in range(count))
    ingestor = UsageIngestor(engine=engine, pricer=Pricer(engine), rules=event_rules(Settings()))
    events = [
        {
            "request_id": f"r{n}",
            # Log-uniform: a few large customers send most events, as in real products.
            "customer_id": f"cust-{int(1000 ** rng.random())}",
            "feature": rng.choice(("chat", "search", "summarise")),
            "model_name": rng.choice(MODELS),
            "prompt_tokens": rng.randrange(100, 20_000),
            "completion_tokens": rng.randrange(10, 2_000),
            "timestamp": (start + timedelta(seconds=offset)).isoformat(),
        }
        for n, offset in enumerate(offsets)
    ]
    for first in range(0, count, 5_000):
        ingestor.ingest_now(org=org, raw_events=events[first : first + 5_000])


def _reprice_per_event(pricer: Pricer, org: Org) -> int:
    """The first implementation's way: price each event and UPDATE it alone."""
    t = usage_events
    changed = 0
    with pricer.engine.begin() as conn:
        rows = conn.execute(select(t).where(t.c.org_id == org.id)).all()
        for row in rows:
            quote = pricer.price(
                org_id=org.id,
                model_name=row.model_name,
                provider=row.provider,
                tokens=TokenCounts(
                    row.prompt_tokens,
                    row.completion_tokens,
                    row.cached_tokens,
                    row.cache_write_tokens,
                    row.reasoning_tokens,
                ),
                at=row.occurred_at,
            )
            if quote.cost_nanos != row.cost_nanos:
                conn.execute(
                    update(t)
                    .where(t.c.id == row.id)
                    .values(cost_nanos=quote.cost_nanos, price_ref=quote.price_ref)
                )
                changed += 1
    return changed


def reprice_figures(sizes: Sizes, workdir: Path) -> list[dict[str, Any]]:
    engine = make_engine(f"sqlite:///{workdir / 'reprice.db'}")
    upgrade(engine)
    org = create_org(engine, name="bench").org
    _load_events(engine, org, sizes.reprice_events)
    pricer = Pricer(engine)
    everything = RepriceScope(date_to=datetime.now(UTC).date())

    def reprice(dry_run: bool) -> Any:
        return reprice_events(
            pricer, org=org, scope=everything, actor="bench", reason="bench", dry_run=dry_run
        )

    def discounted() -> int:
        return add_override(engine, org_id=org.id, model=None, provider="openai", discount_pct="10")

    real, real_cpu, dry, baseline, baseline_cpu = [], [], [], [], []
    for _ in range(sizes.repetitions):
        # Add a discount and re-price, remove it and re-price: both runs change OpenAI events.
        discount = discounted()
        for step in ("added", "removed"):
            if step == "removed":
                delete_override(engine, org_id=org.id, override_id=discount)
            dry_s, _ = _timed(lambda: reprice(True))
            cpu = time.process_time()
            real_s, summary = _timed(lambda: reprice(False))
            real_cpu.append(summary.examined / (time.process_time() - cpu))
            assert summary.changed > 0
            dry.append(summary.examined / dry_s)
            real.append(summary.examined / real_s)
        # The baseline makes the same change one UPDATE at a time (then undoes it, untimed).
        discount = discounted()
        pricer.rules.invalidate(org.id)
        cpu = time.process_time()
        seconds, _ = _timed(lambda: _reprice_per_event(pricer, org))
        baseline_cpu.append(sizes.reprice_events / (time.process_time() - cpu))
        baseline.append(sizes.reprice_events / seconds)
        delete_override(engine, org_id=org.id, override_id=discount)
        pricer.rules.invalidate(org.id)
        _reprice_per_event(pricer, org)
    engine.dispose()
    name = "one UPDATE per changed event (first ledger/repricing.py)"
    target = (REPRICE_TARGET_PER_S, True)
    return [
        _figure("re-pricing, SQLite (writes + rollups)", "events/s", real, name, baseline, target),
        _figure("re-pricing dry run, SQLite", "events/s", dry, name, baseline, None),
        # On a shared machine wall time depends on the neighbours; CPU time much less so.
        _figure(
            "re-pricing, SQLite, per CPU second of this process",
            "events/CPU-s",
            real_cpu,
            name,
            baseline_cpu,
            None,
        ),
    ]


# --- pricing through the history ----------------------------------------------------------------


def pricing_figures(sizes: Sizes, workdir: Path) -> list[dict[str, Any]]:
    engine = make_engine(f"sqlite:///{workdir / 'pricing.db'}")
    upgrade(engine)
    org = create_org(engine, name="pricing").org
    now = datetime.now(UTC)
    with _server() as (url, served):
        served.body = _catalogue_variant(1)
        sync_prices(engine, source=url, triggered_by="bench", now=now - timedelta(days=15))
    rng = random.Random(5)
    inputs = [
        (
            rng.choice(MODELS),
            TokenCounts(rng.randrange(100, 20_000), rng.randrange(10, 2_000)),
            now - timedelta(seconds=rng.randrange(30 * 86_400)),
        )
        for _ in range(sizes.pricing_events)
    ]
    history, fixed = Pricer(engine), Pricer(engine, Catalogue())

    def rate(pricer: Pricer) -> float:
        started = time.perf_counter()
        for name, tokens, at in inputs:
            pricer.price(org_id=org.id, model_name=name, provider=None, tokens=tokens, at=at)
        return len(inputs) / (time.perf_counter() - started)

    rate(history), rate(fixed)  # warm the caches, as in a running server
    ours, base = [], []
    for _ in range(sizes.repetitions):
        ours.append(rate(history))
        base.append(rate(fixed))
    engine.dispose()
    return [
        _figure(
            "Pricer.price through the catalogue history, warm",
            "events/s",
            ours,
            "Pricer.price over one fixed catalogue",
            base,
            (PRICING_TARGET_PER_S, True),
        )
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Every figure of this benchmark (see the module docstring)."""
    sizes = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="margindash-pricing-db-") as tmp:
        workdir = Path(tmp)
        return [
            *sync_figures(sizes, workdir),
            *reprice_figures(sizes, workdir),
            *pricing_figures(sizes, workdir),
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks it works")
    args = parser.parse_args(argv)
    for figure in run(args.quick):
        value = statistics.median(figure["values"])
        baseline = statistics.median(figure["baseline_values"])
        target = figure["target"]
        verdict = ""
        if target is not None:
            met = value >= target["bound"] if target["at_least"] else value <= target["bound"]
            sign = "≥" if target["at_least"] else "≤"
            verdict = f"  target {sign} {target['bound']:,.0f}: {'met' if met else 'MISSED'}"
        print(
            f"{figure['name']}: {value:,.2f} {figure['unit']} "
            f"(baseline {baseline:,.2f}: {figure['baseline_name']}){verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
