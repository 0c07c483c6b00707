"""Cost simulator speed: a month of usage re-priced on ~100 candidate models, from the rollups.

    .venv/bin/python bench/bench_simulator.py [--quick]

`run(quick)` builds its own data set in a temporary SQLite file and returns one dict per figure
(name, unit, values, baseline_name, baseline_values, target, note), the shape of
`bench/results.py`'s `Figure` plus a note. The data is written as rollup rows straight through
`RollupDeltas` (the ingest path's own rollup writer), not event by event: the simulator reads
only the rollups, and a month of 1,000,000 events through the ingest path would take minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from margindash.db.engine import make_engine
from margindash.db.migrate import upgrade
from margindash.db.tables import monthly_rollups
from margindash.ledger.rollups import Measures, RollupDeltas, RollupKey
from margindash.orgs.service import Org, create_org
from margindash.pricing.catalogue import Catalogue
from margindash.reports.periods import add_months, month_bounds
from margindash.reports.pnl import get_pnl
from margindash.simulator.benchmarks import DEFAULT_WEIGHTS
from margindash.simulator.models import ModelDirectory, SimModel
from margindash.simulator.quality import bundled_scores
from margindash.simulator.repricing import TokenMix, mix_cost_nanos
from margindash.simulator.simulation import SimulationOptions, simulate

MONTH = date(2026, 1, 1)
TARGET_MS = 1000.0
BASELINE = "get_pnl by customer, same month (in-process)"
# feature -> (primary model, secondary model, prompt tokens, completion tokens, cached share)
FEATURES = {
    "chat": ("gpt-4o", "gpt-4o-mini", 1800, 350, 0.30),
    "summarize": ("claude-3-5-sonnet", "claude-3-5-haiku-latest", 6000, 400, 0.10),
    "translate": ("gpt-4.1", "deepseek-chat", 900, 850, 0.0),
    "extract": ("gpt-4o-mini", "gemini-2.5-pro", 12_000, 300, 0.50),
    "agent": ("o3-mini", "claude-3-5-sonnet", 4000, 1200, 0.40),
    "search": ("gemini-2.5-pro", "gpt-4.1", 2500, 500, 0.20),
}
REASONING_MODELS = {"o3-mini": 0.6}  # share of completion tokens spent reasoning
SECOND_MODEL_SHARE = 0.25  # (customer, feature) pairs that also use the secondary model
_CHUNK = 25_000


@dataclass(frozen=True, slots=True)
class Size:
    customers: int
    events: int
    runs: int


FULL = Size(customers=10_000, events=1_000_000, runs=7)
QUICK = Size(customers=300, events=20_000, runs=2)


def _customer_events(size: Size, rng: random.Random) -> list[int]:
    """Zipf-like sizes summing exactly to `size.events`."""
    weights = [1 / (rank + 1) ** 0.8 for rank in range(size.customers)]
    total = sum(weights)
    counts = [max(1, int(size.events * w / total)) for w in weights]
    counts[0] += size.events - sum(counts)
    rng.shuffle(counts)
    return counts


def _split(total: int, parts: int) -> list[int]:
    base, rest = divmod(total, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


def _usage_rows(size: Size, rng: random.Random) -> Iterator[tuple[str, str, str, date, int, float]]:
    """(customer, feature, model, day, events, noise) for every active day of the month."""
    first, last = month_bounds(MONTH.year, MONTH.month)
    days = (last - first).days + 1
    for index, events in enumerate(_customer_events(size, rng)):
        customer = f"cust-{index:05d}"
        features = rng.sample(sorted(FEATURES), k=1 + index % len(FEATURES))
        for feature, feature_events in zip(features, _split(events, len(features)), strict=True):
            primary, secondary, *_ = FEATURES[feature]
            split = [(primary, feature_events)]
            if feature_events > 3 and rng.random() < SECOND_MODEL_SHARE:
                moved = feature_events // 3
                split = [(primary, feature_events - moved), (secondary, moved)]
            for model, model_events in split:
                active = min(model_events, 1 + rng.randrange(20))
                chosen = sorted(rng.sample(range(days), active))
                noise = rng.uniform(0.6, 1.6)
                for day, count in zip(chosen, _split(model_events, active), strict=True):
                    yield customer, feature, model, first + timedelta(days=day), count, noise


def _measures(
    feature: str, model: SimModel, events: int, noise: float, catalogue: Catalogue
) -> Measures:
    _, _, prompt, completion, cached_share = FEATURES[feature]
    per_prompt, per_completion = int(prompt * noise), int(completion * noise)
    mix = TokenMix(
        events=events,
        prompt=events * per_prompt,
        completion=events * per_completion,
        cached=int(events * per_prompt * cached_share),
        reasoning=int(events * per_completion * REASONING_MODELS.get(model.name, 0.0)),
    )
    return Measures(
        events=events,
        prompt_tokens=mix.prompt,
        completion_tokens=mix.completion,
        cached_tokens=mix.cached,
        reasoning_tokens=mix.reasoning,
        cost_nanos=mix_cost_nanos(catalogue, model, mix, datetime.now(UTC)),
        max_prompt_tokens=per_prompt * 2,
    )


def _write(engine: Engine, deltas: RollupDeltas) -> RollupDeltas:
    with engine.begin() as conn:
        deltas.write(conn, engine)
    return RollupDeltas()


def build(engine: Engine, size: Size, catalogue: Catalogue) -> tuple[Org, int]:
    """An org with a month of usage and revenue as rollups; returns it and the row count."""
    rng = random.Random(20260101)
    org = create_org(engine, name="simulator-bench").org
    directory = ModelDirectory(catalogue, scores_of=bundled_scores().get, at=datetime.now(UTC))
    models = {name: directory.find(name) for f in FEATURES.values() for name in f[:2]}
    costs: dict[str, int] = {}
    deltas, rows = RollupDeltas(), 0
    for customer, feature, model_name, day, events, noise in _usage_rows(size, rng):
        model = models[model_name]
        assert model is not None, model_name
        measures = _measures(feature, model, events, noise, catalogue)
        costs[customer] = costs.get(customer, 0) + measures.cost_nanos
        deltas.add(RollupKey(org.id, day, customer, feature, model_name), measures)
        rows += 1
        if len(deltas.by_key) >= _CHUNK:
            deltas = _write(engine, deltas)
    # Revenue per customer: most earn a margin, about one in six lose money, and those lost
    # money the month before too (two negative months: the brief's rule).
    previous = add_months(MONTH, -1).replace(day=15)
    for customer, cost in costs.items():
        losing = rng.random() < 0.16
        factor = rng.uniform(0.6, 0.95) if losing else rng.uniform(1.1, 2.5)
        revenue = Measures(revenue_nanos=int(cost * factor))
        deltas.add(RollupKey(org.id, MONTH.replace(day=1), customer, "", ""), revenue)
        before = Measures(events=1, prompt_tokens=1000, completion_tokens=100, cost_nanos=cost)
        deltas.add(RollupKey(org.id, previous, customer, "chat", "gpt-4o"), before)
        then = Measures(revenue_nanos=int(cost * (0.9 if losing else 1.5)))
        deltas.add(RollupKey(org.id, previous, customer, "", ""), then)
        if len(deltas.by_key) >= _CHUNK:
            deltas = _write(engine, deltas)
    _write(engine, deltas)
    return org, rows


@dataclass(slots=True)
class Timings:
    """Wall-clock and CPU milliseconds of each run (CPU: this process only, so a busy
    machine inflates it far less than the wall clock)."""

    wall_ms: list[float]
    cpu_ms: list[float]


def _timed(runs: int, call: Callable[[], Any]) -> tuple[Timings, Any]:
    timings, result = Timings([], []), None
    for _ in range(runs):
        result = None  # one answer alive at a time, as in a server
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        timings.cpu_ms.append((time.process_time() - cpu) * 1000)
        timings.wall_ms.append((time.perf_counter() - wall) * 1000)
    return timings, result


def run(quick: bool) -> list[dict[str, Any]]:
    """Build the data set, time the simulation against the plain P&L query, return figures."""
    size = QUICK if quick else FULL
    catalogue = Catalogue()
    with tempfile.TemporaryDirectory(prefix="margindash-sim-bench-") as work:
        engine = make_engine(f"sqlite:///{Path(work) / 'bench.db'}")
        upgrade(engine)
        started = time.perf_counter()
        org, daily_rows = build(engine, size, catalogue)
        build_s = time.perf_counter() - started
        with engine.connect() as conn:
            monthly_rows = conn.execute(
                select(func.count()).where(
                    monthly_rollups.c.org_id == org.id, monthly_rollups.c.month == MONTH
                )
            ).scalar_one()
        start, end = month_bounds(MONTH.year, MONTH.month)
        default = SimulationOptions(date_from=start, date_to=end)
        directory = ModelDirectory(catalogue, scores_of=bundled_scores().get, at=datetime.now(UTC))
        hundred = tuple(m.key for m in directory.of_keys(bundled_scores().models)[:100])
        explicit = SimulationOptions(date_from=start, date_to=end, candidates=hundred)

        def pnl() -> Any:
            return get_pnl(engine, org=org, date_from=start, date_to=end, group_by="customer")

        def simulated(options: SimulationOptions) -> Callable[[], Any]:
            return lambda: simulate(
                engine,
                org=org,
                catalogue=catalogue,
                options=options,
                default_weights=DEFAULT_WEIGHTS,
            )

        simulated(default)()  # warm-up: parses the bundled scores and LiteLLM facts once
        baseline, _ = _timed(size.runs, pnl)
        default_runs, result = _timed(size.runs, simulated(default))
        events = sum(row.mix.events for row in result.rows)
        considered = max(row.considered for row in result.rows)
        swaps = sum(1 for row in result.rows if row.best is not None)
        rows, customers = len(result.rows), len(result.customers)
        del result
        explicit_runs, _ = _timed(size.runs, simulated(explicit))
        load = os.getloadavg()[0]
        engine.dispose()
    note = (
        f"{events:,} events of {MONTH:%Y-%m} over {size.customers:,} customers, "
        f"{len(FEATURES)} features and 8 models: {daily_rows:,} daily and {monthly_rows:,} "
        "monthly rollup rows, generated straight into a SQLite file with `RollupDeltas` (not "
        f"through ingest; built in {build_s:,.0f} s). {rows} (feature, model) rows, "
        f"{swaps} with a swap, {customers:,} customers in the before/after. "
        f"Median of {size.runs} in-process runs of `simulator.simulate` (rollup read, pricing "
        "every candidate, ranking, per-customer margins and negative-month streaks), no JSON. "
        "Baseline: `reports.pnl.get_pnl(group_by='customer')` on the same data. Load average "
        f"at the end of the runs: {load:.1f} on {os.cpu_count()} CPUs."
    )
    target = None if quick else {"bound": TARGET_MS, "at_least": False}
    default_name = f"simulate, default candidates ({considered} models after host dedupe)"
    return [
        {
            "name": default_name,
            "unit": "ms",
            "values": default_runs.wall_ms,
            "baseline_name": BASELINE,
            "baseline_values": baseline.wall_ms,
            "target": target,
            "note": note,
        },
        {
            "name": f"simulate, {len(hundred)} explicit candidates",
            "unit": "ms",
            "values": explicit_runs.wall_ms,
            "baseline_name": BASELINE,
            "baseline_values": baseline.wall_ms,
            "target": target,
            "note": note,
        },
        {
            "name": f"{default_name}: CPU time",
            "unit": "ms",
            "values": default_runs.cpu_ms,
            "baseline_name": f"{BASELINE}: CPU time",
            "baseline_values": baseline.cpu_ms,
            "target": None,
            "note": note,
        },
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data: checks it works")
    args = parser.parse_args(argv)
    for figure in run(args.quick):
        median = statistics.median(figure["values"])
        base = statistics.median(figure["baseline_values"])
        print(f"{figure['name']}: {median:,.1f} ms (baseline {base:,.1f} ms, {median / base:.1f}x)")
    print(figure["note"])


if __name__ == "__main__":
    main()
