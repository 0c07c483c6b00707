"""Ingest over HTTP: single-event throughput, peak RSS, latency at fixed rates, batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import Backend, Context
from results import Figure, Section, Target
from servers import Server, run_load
from workload import batch_template

BASELINE = "no-op FastAPI"
_SINGLE_TARGET_RATIO = 0.5
_P50_TARGET_MS = 10.0
_P50_TARGET_RATE = 1000.0
_BATCH_TARGETS = {"SQLite": 50_000.0, "PostgreSQL": 25_000.0}
_OPEN_LOOP_CONNECTIONS = 64

_CPU_NOTE = (
    "Server CPU per request = the server process's user + system CPU time over the whole run "
    "(warm-up included) / the requests it answered with 2xx. It is less sensitive than "
    "throughput to other work on the machine; it leaves out the PostgreSQL server's own CPU."
)

Runs = dict[str, list[dict[str, Any]]]


def _targets(ctx: Context) -> list[tuple[str, Server, str]]:
    """(name, server, ingest key) of the baseline and of margindash on each database."""
    found = [(BASELINE, ctx.baseline, "")]
    found += [(b.name, b.server, b.ingest_org.ingest_key) for b in ctx.backends]
    return found


def _interleaved(ctx: Context, spec: Callable[[], dict[str, Any]]) -> Runs:
    """Each repetition runs every server in turn, so noise on the machine hits all alike."""
    runs: Runs = {name: [] for name, _, _ in _targets(ctx)}
    for _ in range(ctx.sizes.repetitions):
        for name, server, key in _targets(ctx):
            cpu = server.cpu_seconds()
            result = run_load(port=server.port, api_key=key, prefix=ctx.prefix(), **spec())
            result["server_cpu_s"] = server.cpu_seconds() - cpu
            runs[name].append(result)
    return runs


def _cpu_per_request_us(runs: list[dict[str, Any]], per_request: int = 1) -> list[float]:
    """Server CPU time per acknowledged request (or event), warm-up included on both sides."""
    return [r["server_cpu_s"] / (r["ok_total"] * per_request) * 1e6 for r in runs if r["ok_total"]]


def _values(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
    return [float(run[key]) * scale for run in runs]


def _run_notes(runs: Runs) -> list[str]:
    """Non-2xx answers, transport errors, and how busy the load generator was."""
    notes = []
    for name, results in runs.items():
        statuses: dict[str, int] = {}
        for result in results:
            for status, count in result["statuses"].items():
                if not status.startswith("2"):
                    statuses[status] = statuses.get(status, 0) + count
        errors = sum(result["errors"] for result in results)
        if statuses or errors:
            notes.append(
                f"{name}: non-2xx answers {statuses or 'none'}; {errors} requests failed on the "
                "connection or were still unanswered 10 s after the last was sent (left out of "
                "the percentiles, which therefore understate the latency)."
            )
    busiest = max(
        (r["generator_cpu_s"] / r["wall_s"] for rs in runs.values() for r in rs if r["wall_s"]),
        default=0.0,
    )
    notes.append(
        f"The load generator used at most {busiest:.0%} of one core in these runs "
        "(near 100% would mean the generator, not the server, set the pace)."
    )
    return notes


def _stored_check(ctx: Context, before: dict[str, int], runs: Runs, per_request: int) -> str:
    """Compare what each database stored with the 2xx answers the generator received."""
    parts = []
    for backend in ctx.backends:
        stored = backend.stored_events(backend.ingest_org.org_id) - before[backend.name]
        answered = sum(r["ok_total"] for r in runs[backend.name]) * per_request
        mark = "✓" if stored == answered else "✗ MISMATCH"
        parts.append(
            f"{backend.name} stored {stored:,} events for {answered:,} acknowledged {mark}"
        )
    return "Durability check (rows counted after the runs): " + "; ".join(parts) + "."


def _counts(ctx: Context) -> dict[str, int]:
    return {b.name: b.stored_events(b.ingest_org.org_id) for b in ctx.backends}


def single_event_ingest(ctx: Context) -> Section:
    """Throughput of one-event POSTs from 32 keep-alive clients, against the no-op endpoint."""
    s = ctx.sizes
    section = Section(
        "Single-event ingest (POST /v1/usage, one event per request)",
        f"Closed loop: {s.clients} keep-alive connections from a second process each send the "
        f"next request as soon as the last is answered; {s.warmup_s:g} s warm-up, then "
        f"{s.load_s:g} s measured, {s.repetitions} repetitions interleaved across the servers. "
        "Every request has a unique `request_id`; the event cycles through 8 model-name forms "
        "and 10,000 customers. margindash acknowledges an event only after its group commit "
        "(SQLite `synchronous=FULL` in WAL mode; PostgreSQL default `synchronous_commit=on`). "
        "Baseline: the no-op FastAPI app in `bench/noop_app.py`, which validates the same body "
        "with the same pydantic model and stores nothing, served by the same uvicorn settings.",
    )
    before = _counts(ctx)
    runs = _interleaved(
        ctx,
        lambda: {
            "mode": "closed",
            "body": "single",
            "concurrency": s.clients,
            "duration_s": s.load_s,
            "warmup_s": s.warmup_s,
        },
    )
    base = runs[BASELINE]
    for backend in ctx.backends:
        mine = runs[backend.name]
        section.figures += [
            Figure(
                f"{backend.name}: throughput",
                "req/s",
                _values(mine, "throughput"),
                BASELINE,
                _values(base, "throughput"),
                Target(_SINGLE_TARGET_RATIO, at_least=True, on_ratio=True),
            ),
            Figure(
                f"{backend.name}: server CPU per request",
                "µs",
                _cpu_per_request_us(mine),
                BASELINE,
                _cpu_per_request_us(base),
            ),
            Figure(
                f"{backend.name}: p50 latency at that load",
                "ms",
                _values(mine, "p50_ms"),
                BASELINE,
                _values(base, "p50_ms"),
            ),
            Figure(
                f"{backend.name}: p99 latency at that load",
                "ms",
                _values(mine, "p99_ms"),
                BASELINE,
                _values(base, "p99_ms"),
            ),
        ]
    section.notes += [_stored_check(ctx, before, runs, 1), _CPU_NOTE, *_run_notes(runs)]
    return section


def peak_rss(ctx: Context) -> Section:
    """VmHWM of each server process, read right after the single-event load."""
    section = Section(
        "Peak memory of the server (VmHWM after the single-event load)",
        "`VmHWM` from `/proc/<pid>/status` of each server process, read right after the "
        "single-event runs (it is the high-water mark since the process started). Baseline: "
        "the no-op FastAPI app under the same load.",
    )
    base = ctx.baseline.peak_rss_mib()
    for backend in ctx.backends:
        section.figures.append(
            Figure(
                f"{backend.name}: peak RSS",
                "MiB",
                [backend.server.peak_rss_mib()],
                BASELINE,
                [base],
            )
        )
    return section


def ingest_latency(ctx: Context) -> Section:
    """p50/p95/p99 of single-event POSTs sent open-loop at fixed request rates."""
    s = ctx.sizes
    section = Section(
        "Single-event ingest latency at fixed request rates",
        f"Open loop: requests are scheduled at a fixed rate whether or not earlier ones were "
        f"answered, over a pool of {_OPEN_LOOP_CONNECTIONS} keep-alive connections, and each "
        "latency is measured from the request's *scheduled* time (queueing in the client counts; "
        f"no coordinated omission). {s.warmup_s:g} s warm-up, {s.latency_s:g} s measured, "
        f"{s.repetitions} repetitions; the figure is the median of the repetitions' percentiles.",
    )
    all_runs: Runs = {}
    for rate in s.rates:
        runs = _interleaved(
            ctx,
            lambda rate=rate: {
                "mode": "open",
                "body": "single",
                "rate": rate,
                "concurrency": _OPEN_LOOP_CONNECTIONS,
                "duration_s": s.latency_s,
                "warmup_s": s.warmup_s,
            },
        )
        section.figures += _latency_figures(ctx.backends, runs, rate)
        section.notes += _rate_shortfalls(runs, rate)
        for name, results in runs.items():
            all_runs.setdefault(name, []).extend(results)
    section.notes += _run_notes(all_runs)
    return section


def _latency_figures(backends: list[Backend], runs: Runs, rate: float) -> list[Figure]:
    figures = []
    for backend in backends:
        for pct in ("p50", "p95", "p99"):
            target = None
            if pct == "p50" and rate == _P50_TARGET_RATE:
                target = Target(_P50_TARGET_MS, at_least=False)
            figures.append(
                Figure(
                    f"{backend.name}: {pct} at {rate:,.0f} req/s",
                    "ms",
                    _values(runs[backend.name], f"{pct}_ms"),
                    BASELINE,
                    _values(runs[BASELINE], f"{pct}_ms"),
                    target,
                )
            )
    return figures


def _rate_shortfalls(runs: Runs, rate: float) -> list[str]:
    notes = []
    for name, results in runs.items():
        achieved = min(r["throughput"] for r in results)
        if achieved < 0.95 * rate:
            notes.append(
                f"{name} at {rate:,.0f} req/s: answered only {achieved:,.0f} req/s in its "
                "slowest repetition, so requests queued and latencies include that wait."
            )
    return notes


def batch_ingest(ctx: Context) -> Section:
    """Events/s of 1,000-event POSTs from a few concurrent clients."""
    s = ctx.sizes
    section = Section(
        f"Batch ingest (POST /v1/usage with {s.batch_size:,} events per request)",
        f"Closed loop: {s.batch_clients} concurrent clients each send a {s.batch_size:,}-event "
        f"body ({len(batch_template(s.batch_size)) / 1024:,.0f} KiB) as soon as the last was "
        "answered; "
        f"{s.warmup_s:g} s warm-up, {s.batch_s:g} s measured, {s.repetitions} repetitions. "
        "Events per second = answered requests/s x batch size. Baseline: the no-op FastAPI "
        "endpoint validating the same batch body.",
    )
    before = _counts(ctx)
    runs = _interleaved(
        ctx,
        lambda: {
            "mode": "closed",
            "body": "batch",
            "batch_size": s.batch_size,
            "concurrency": s.batch_clients,
            "duration_s": s.batch_s,
            "warmup_s": s.warmup_s,
        },
    )
    base = _values(runs[BASELINE], "throughput", s.batch_size)
    for backend in ctx.backends:
        target = _BATCH_TARGETS.get(backend.name)
        section.figures += [
            Figure(
                f"{backend.name}: events/s",
                "events/s",
                _values(runs[backend.name], "throughput", s.batch_size),
                BASELINE,
                base,
                Target(target, at_least=True) if target else None,
            ),
            Figure(
                f"{backend.name}: server CPU per event",
                "µs",
                _cpu_per_request_us(runs[backend.name], s.batch_size),
                BASELINE,
                _cpu_per_request_us(runs[BASELINE], s.batch_size),
            ),
        ]
    section.notes += [
        _stored_check(ctx, before, runs, s.batch_size),
        _CPU_NOTE,
        *_run_notes(runs),
    ]
    return section
