"""P&L query time over HTTP and in-process, at growing event counts, on each database."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from harness import Backend, Context
from results import Figure, Section, Target
from servers import BenchError, run_load
from sqlalchemy import func, select
from workload import PnlDataset, previous_month

from margindash.config import Settings
from margindash.db.tables import monthly_rollups
from margindash.ledger.ingest import UsageIngestor, event_rules
from margindash.orgs.service import Org, find_org
from margindash.pricing.service import Pricer
from margindash.reports.periods import month_bounds
from margindash.reports.pnl import get_pnl

_TARGET_MS = 100.0
_TARGET_EVENTS = 1_000_000
_CHUNK = 10_000
BASELINE = "GET /v1/fx-rates"


@dataclass(slots=True)
class Loader:
    """Feeds a backend's `pnl` org through the real ingest path (check, price, write, rollups)."""

    backend: Backend
    dataset: PnlDataset
    org: Org
    ingestor: UsageIngestor
    loaded: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.loaded / self.seconds if self.seconds else 0.0

    def load_to(self, total: int) -> None:
        """Load events up to `total`; this stage's events cover the month in time order."""
        span = (self.loaded, total)
        while self.loaded < total:
            count = min(_CHUNK, total - self.loaded)
            events = list(self.dataset.events(count, start=self.loaded, span=span))
            started = time.perf_counter()
            report = self.ingestor.ingest_now(org=self.org, raw_events=events)
            self.seconds += time.perf_counter() - started
            if (accepted := report.count("accepted")) != count:
                raise BenchError(f"P&L load: {count - accepted} of {count} events not accepted")
            self.loaded += count


def _loader(backend: Backend, dataset: PnlDataset) -> Loader:
    engine = backend.engine
    org = find_org(engine, backend.pnl_org.org_id)
    if org is None:
        raise BenchError("the pnl org is missing")
    rules = event_rules(Settings(_env_file=None))
    ingestor = UsageIngestor(engine=engine, pricer=Pricer(engine), rules=rules)
    return Loader(backend, dataset, org, ingestor)


def _http_p50s(ctx: Context, backend: Backend, path: str) -> list[float]:
    """Per repetition, the median of sequential GETs on one keep-alive connection."""
    medians = []
    for _ in range(ctx.sizes.repetitions):
        result = run_load(
            port=backend.server.port,
            path=path,
            body="none",
            api_key=backend.pnl_org.api_key,
            mode="closed",
            concurrency=1,
            warmup_s=0.2,
            duration_s=60.0,
            max_requests=ctx.sizes.pnl_http_requests,
            prefix=ctx.prefix(),
        )
        if not result["requests"] or result["ok"] != result["requests"]:
            raise BenchError(f"{path}: {result['statuses']}, errors {result['errors']}")
        medians.append(float(result["p50_ms"]))
    return medians


def _in_process_ms(ctx: Context, loader: Loader) -> list[float]:
    month = loader.dataset.month
    start, end = month_bounds(month.year, month.month)
    times = []
    for _ in range(ctx.sizes.pnl_inprocess_runs):
        started = time.perf_counter()
        get_pnl(
            loader.backend.engine, org=loader.org, date_from=start, date_to=end, group_by="customer"
        )
        times.append((time.perf_counter() - started) * 1000)
    return times


def _rollup_rows(loader: Loader) -> int:
    """Rows of the month in `monthly_rollups` for the org: what the query reads."""
    table = monthly_rollups
    with loader.backend.engine.connect() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(table)
            .where(table.c.org_id == loader.org.id, table.c.month == loader.dataset.month)
        ).scalar_one()
    return int(count)


def _response_shape(backend: Backend, path: str) -> str:
    """Rows and body size of one P&L answer, so the reader knows what was timed."""
    response = httpx.get(
        f"http://127.0.0.1:{backend.server.port}{path}",
        headers={"Authorization": f"Bearer {backend.pnl_org.api_key}"},
        timeout=60,
    )
    response.raise_for_status()
    rows = len(response.json()["rows"])
    return f"{rows:,} customer rows, {len(response.content) / 1024:,.0f} KiB of JSON"


def _measure(ctx: Context, loader: Loader, section: Section) -> None:
    backend, size = loader.backend, loader.loaded
    month = loader.dataset.month.strftime("%Y-%m")
    path = f"/v1/pnl?group_by=customer&month={month}"
    target = Target(_TARGET_MS, at_least=False) if size == _TARGET_EVENTS else None
    baseline = _http_p50s(ctx, backend, "/v1/fx-rates")
    as_loaded = _http_p50s(ctx, backend, path)
    _settle(backend)
    section.figures += [
        Figure(
            f"{backend.name}, {size:,} events: GET /v1/pnl (HTTP)",
            "ms",
            _http_p50s(ctx, backend, path),
            BASELINE,
            baseline,
            target,
        ),
        Figure(
            f"{backend.name}, {size:,} events: GET /v1/pnl (HTTP) right after loading",
            "ms",
            as_loaded,
            BASELINE,
            baseline,
        ),
        Figure(
            f"{backend.name}, {size:,} events: get_pnl (in-process)",
            "ms",
            _in_process_ms(ctx, loader),
            BASELINE,
            baseline,
        ),
    ]
    section.notes.append(
        f"{backend.name}, {size:,} events: {_response_shape(backend, path)}, "
        f"{_rollup_rows(loader):,} monthly rollup rows; loaded through "
        f"`UsageIngestor.ingest_now` at {loader.rate:,.0f} events/s so far."
    )


def _settle(backend: Backend) -> None:
    """What the database of a running server does on its own after a load.

    PostgreSQL: autovacuum and autoanalyze (off on this benchmark machine's server, on by
    default everywhere else) clear the dead row versions the rollup upserts left behind — a
    customer's row is rewritten by every chunk that has events of it — and give the planner
    statistics. SQLite: a checkpoint moves the write-ahead log into the database file.
    """
    engine = backend.engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM (ANALYZE)")
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _fits(loader: Loader, size: int, budget_s: float) -> bool:
    projected = loader.seconds + (size - loader.loaded) / max(loader.rate, 1.0)
    return loader.loaded == 0 or projected <= budget_s


def pnl(ctx: Context) -> Section:
    """Monthly P&L by customer at each event count that fits the loading budget."""
    s = ctx.sizes
    dataset = PnlDataset(customers=s.pnl_customers, month=previous_month())
    sizes = ", ".join(f"{n:,}" for n in s.pnl_events)
    section = Section(
        "P&L query time (GET /v1/pnl?group_by=customer&month=…)",
        f"Events for last month over {s.pnl_customers:,} customers (Zipf-like sizes; each "
        "customer uses two feature/model pairs; 30% of events carry revenue; each loading stage "
        "covers the month in time order, like a back-fill of logs) are loaded through "
        f"the real ingest path, `UsageIngestor.ingest_now`, in chunks of {_CHUNK:,} (checks, "
        "pricing, event rows and rollups, one transaction per chunk), into a separate org on the "
        f"same database as the ingest runs. At each size ({sizes}; up to "
        f"{s.pnl_required_events:,} always on {ctx.backends[0].name}, otherwise as the loading "
        f"budget of {s.pnl_load_budget_s:,.0f} s per database allows) the figure is the median of "
        f"{s.pnl_http_requests} sequential requests on one keep-alive connection, "
        f"{s.repetitions} repetitions; the in-process figure times `reports.pnl.get_pnl` "
        f"({s.pnl_inprocess_runs} runs) to separate HTTP/JSON from the query. Each size is "
        "timed right after loading, then again after what a running server's database does on "
        "its own (PostgreSQL: `VACUUM (ANALYZE)`, as autovacuum would — it is off on this "
        "machine's server; SQLite: a WAL checkpoint); the target applies to the second. "
        "Baseline: a trivial authenticated GET (`/v1/fx-rates`) on the same server.",
    )
    for backend in ctx.backends:
        loader = _loader(backend, dataset)
        for size in s.pnl_events:
            required = backend is ctx.backends[0] and size <= s.pnl_required_events
            if not required and not _fits(loader, size, s.pnl_load_budget_s):
                projected = (size - loader.loaded) / max(loader.rate, 1.0)
                section.notes.append(
                    f"{backend.name}: {size:,} events skipped: loading them would take about "
                    f"{projected / 60:,.0f} more minutes at {loader.rate:,.0f} events/s, beyond "
                    f"the {s.pnl_load_budget_s:,.0f} s budget."
                )
                break
            loader.load_to(size)
            _measure(ctx, loader, section)
    return section
