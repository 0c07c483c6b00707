"""The run's shared state: sizes, the servers under test, their databases and org keys."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from servers import (
    OrgKeys,
    Server,
    init_org,
    postgres_database,
    start_margindash,
    start_noop,
)
from sqlalchemy import Engine, func, select

from margindash.db.engine import make_engine
from margindash.db.tables import usage_events


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each benchmark does (full run or `--quick` smoke run)."""

    quick: bool
    repetitions: int
    load_s: float  # measured seconds of each closed-loop run
    warmup_s: float
    clients: int
    rates: tuple[float, ...]  # open-loop request rates for the latency figures
    latency_s: float
    batch_clients: int
    batch_s: float  # measured seconds of each batch run (a PostgreSQL batch can take ~1 s)
    batch_size: int
    pricing_events: int
    pricing_baseline_events: int
    pnl_events: tuple[int, ...]
    pnl_customers: int
    pnl_http_requests: int
    pnl_inprocess_runs: int
    pnl_required_events: int  # loaded on the first database (SQLite) whatever the budget
    pnl_load_budget_s: float  # per database; other sizes are skipped beyond it


FULL = Sizes(
    quick=False,
    repetitions=3,
    load_s=5.0,
    warmup_s=1.0,
    clients=32,
    rates=(250.0, 500.0, 1000.0),
    latency_s=4.0,
    batch_clients=4,
    batch_s=8.0,
    batch_size=1000,
    pricing_events=200_000,
    pricing_baseline_events=10_000,
    pnl_events=(100_000, 1_000_000, 10_000_000),
    pnl_customers=10_000,
    pnl_http_requests=15,
    pnl_inprocess_runs=7,
    pnl_required_events=1_000_000,
    pnl_load_budget_s=300.0,
)
QUICK = Sizes(
    quick=True,
    repetitions=1,
    load_s=1.0,
    warmup_s=0.3,
    clients=32,
    rates=(200.0,),
    latency_s=1.0,
    batch_clients=2,
    batch_s=1.5,
    batch_size=1000,
    pricing_events=2_000,
    pricing_baseline_events=200,
    pnl_events=(2_000,),
    pnl_customers=100,
    pnl_http_requests=3,
    pnl_inprocess_runs=2,
    pnl_required_events=2_000,
    pnl_load_budget_s=20.0,
)


@dataclass(slots=True)
class Backend:
    """margindash on one database: its server, and an org each for ingest and for the P&L."""

    name: str
    url: str
    server: Server
    ingest_org: OrgKeys
    pnl_org: OrgKeys
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def stored_events(self, org_id: str) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(usage_events)
                .where(usage_events.c.org_id == org_id)
            ).scalar_one()
        return int(count)


@dataclass(slots=True)
class Context:
    """Everything a benchmark function needs."""

    sizes: Sizes
    workdir: Path
    baseline: Server  # the no-op FastAPI app
    backends: list[Backend]
    notes: list[str] = field(default_factory=list)
    _prefixes: Iterator[int] = field(default_factory=itertools.count)

    def prefix(self) -> str:
        """A request-id prefix no earlier load run of this process has used."""
        return f"b{os.getpid()}-{next(self._prefixes)}"


@contextmanager
def running(sizes: Sizes, workdir: Path) -> Iterator[Context]:
    """Databases, orgs and servers for a run; everything is stopped and dropped afterwards."""
    with ExitStack() as stack:
        urls = [("SQLite", f"sqlite:///{workdir / 'bench.db'}")]
        postgres = stack.enter_context(postgres_database())
        notes = []
        if postgres is None:
            notes.append("PostgreSQL was not reachable: its figures are missing from this run.")
        else:
            urls.append(("PostgreSQL", postgres))
        backends = []
        for name, url in urls:
            ingest_org = init_org(url, "bench", workdir=workdir)
            pnl_org = init_org(url, "pnl", workdir=workdir)
            server = start_margindash(f"margindash ({name})", url, workdir=workdir)
            stack.callback(server.stop)
            backend = Backend(name, url, server, ingest_org, pnl_org)
            stack.callback(backend.close)
            backends.append(backend)
        baseline = start_noop(workdir=workdir)
        stack.callback(baseline.stop)
        yield Context(sizes, workdir, baseline, backends, notes)
