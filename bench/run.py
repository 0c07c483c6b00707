"""Run the benchmark suite and write docs/benchmarks.md.

    .venv/bin/python bench/run.py [--quick] [--out PATH] [--only NAME ...] [--keep]

A benchmark is one function `(Context) -> Section` in `cases/`, or a standalone module
`bench_*.py` with `run(quick)` returning figures as dicts (see `cases/modules.py`); add it to
BENCHMARKS.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cases.ingest import batch_ingest, ingest_latency, peak_rss, single_event_ingest
from cases.modules import module_benchmark
from cases.pnl import pnl
from cases.pricing import pricing
from harness import FULL, QUICK, Context, running
from machine import describe, load_average
from report import RunInfo, as_json, render
from results import Section
from servers import postgres_version

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / "bench" / "results"

# In order: peak_rss reads the high-water mark the single-event load just set.
BENCHMARKS: tuple[Callable[[Context], Section], ...] = (
    pricing,
    single_event_ingest,
    peak_rss,
    ingest_latency,
    batch_ingest,
    pnl,
    module_benchmark("sdk", "bench_sdk", "SDK overhead: track() in the host app"),
    module_benchmark("simulator", "bench_simulator", "Cost simulator"),
    module_benchmark(
        "pricing_db", "bench_pricing_db", "Pricing database: sync, re-pricing, catalogue history"
    ),
)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite works")
    parser.add_argument("--out", type=Path, help="where to write the Markdown report")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[b.__name__ for b in BENCHMARKS],
        help="run only these benchmarks",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, db)")
    return parser.parse_args(argv)


def _output(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    if args.quick or args.only:
        return Path(tempfile.gettempdir()) / "margindash-benchmarks.md"
    return DOCS


def _run_one(benchmark: Callable[[Context], Section], ctx: Context) -> Section:
    """Run one benchmark; a failure becomes a section that says so, and the suite goes on."""
    name = benchmark.__name__
    print(f"[bench] {name} …", file=sys.stderr, flush=True)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        section = benchmark(ctx)
    except Exception as exc:  # one broken benchmark must not lose the others' figures
        traceback.print_exc()
        section = Section(f"{name} (FAILED)", f"The benchmark failed: {exc}")
    section.seconds = time.perf_counter() - started
    section.load = (load_before, os.getloadavg()[0])
    print(f"[bench] {name} done in {section.seconds:,.0f} s", file=sys.stderr, flush=True)
    return section


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    sizes = QUICK if args.quick else FULL
    chosen = [b for b in BENCHMARKS if not args.only or b.__name__ in args.only]
    workdir = Path(tempfile.mkdtemp(prefix="margindash-bench-"))
    started, wall = datetime.now(UTC), time.perf_counter()
    load_before = load_average()
    sections: list[Section] = []
    try:
        with running(sizes, workdir) as ctx:
            machine = describe(data_dir=workdir, postgres=postgres_version(), repo=REPO)
            sections = [_run_one(benchmark, ctx) for benchmark in chosen]
            notes = ctx.notes
    finally:
        if args.keep:
            print(f"[bench] work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info = RunInfo(
        command=shlex.join([".venv/bin/python", "bench/run.py", *(argv or sys.argv[1:])]),
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        minutes=(time.perf_counter() - wall) / 60,
        load_before=load_before,
        load_after=load_average(),
        machine=machine,
        notes=notes,
    )
    out = _output(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(info, sections))
    raw = RESULTS / "latest.json" if out == DOCS else out.with_suffix(".json")
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(orjson.dumps(as_json(info, sections), option=orjson.OPT_INDENT_2))
    print(f"[bench] wrote {out} and {raw}", file=sys.stderr)
    return 1 if any(s.title.endswith("(FAILED)") for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
