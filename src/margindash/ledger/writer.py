"""The write path: one writer thread per process, committing concurrent requests together.

SQLite has one writer; committing each request alone would make every request wait for its
own fsync. Requests hand their rows to the writer, which drains everything waiting, writes it
in one transaction (events, then rollup deltas) and commits once ("group commit"). A request's
rows are acknowledged only after that commit.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from margindash.db.bulk import BulkInsert
from margindash.db.engine import upsert
from margindash.db.tables import ingest_stats, usage_events
from margindash.ledger.rollups import RollupKey, event_rollup_upserts

log = logging.getLogger(__name__)
_MAX_GROUP_ROWS = 20_000
_BUSY_RETRIES = 5
# SQLite result codes (and their extended forms) that mean "not now", not "wrong".
_SQLITE_UNAVAILABLE = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
    "SQLITE_NOMEM",
    "SQLITE_PROTOCOL",
)


class DatabaseUnavailable(RuntimeError):
    """The database could not be written; the client should retry later (503)."""


# Column order of `EventRow.params` (and of the bulk INSERT into usage_events).
USAGE_COLUMNS = (
    "org_id",
    "request_id",
    "customer_id",
    "feature",
    "model_name",
    "model",
    "provider",
    "occurred_at",
    "day",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "price_source",
    "price_ref",
    "estimated",
    "revenue_cents",
    "metadata",
    "received_at",
)


@dataclass(slots=True)
class EventRow:
    """A checked, priced event ready to insert (the database derives its rollup rows)."""

    params: tuple[Any, ...]  # in USAGE_COLUMNS order

    @property
    def org_id(self) -> str:
        return str(self.params[0])

    @property
    def request_id(self) -> str:
        return str(self.params[1])

    @property
    def key(self) -> RollupKey:
        """The daily rollup row the event adds to."""
        p = self.params
        return RollupKey(p[0], p[8], p[2], p[3], p[5])

    @property
    def values(self) -> dict[str, Any]:
        return dict(zip(USAGE_COLUMNS, self.params, strict=True))


@cache
def _insert_events(dialect: str) -> BulkInsert:
    if dialect == "sqlite":
        # SQLite: no RETURNING, which would cost a driver call, and a wait for the GIL, per
        # inserted row; `_insert_sqlite` finds skipped duplicates by rowid, then the rollups
        # follow as separate statements.
        extra: dict[str, Any] = {}
    else:
        # PostgreSQL: one statement inserts the events, adds the new ones to the rollups and
        # returns which were new, so a small commit is one round trip (the writer's connection
        # is in autocommit mode; large ones stage their rows with a COPY first, see `bulk`).
        extra = {
            "returning": ("*",),  # read by the rollup upserts; only two columns are sent back
            "postgres_wrapper": (
                f"WITH new_events AS ({{insert}}), {_chained_rollup_upserts()} "
                "SELECT org_id, request_id FROM new_events"
            ),
        }
    return BulkInsert(
        dialect=dialect,
        table=usage_events,
        columns=USAGE_COLUMNS,
        conflict=("org_id", "request_id"),
        on_conflict="DO NOTHING",
        **extra,
    )


def _chained_rollup_upserts() -> str:
    """The rollup upserts as WITH queries that run one after the other, table by table.

    PostgreSQL runs the sub-statements of a WITH in an unspecified order, but every writer
    must lock rollup rows table by table in the same order (daily, monthly, per customer) or
    two of them could deadlock. Each upsert therefore reads only after the previous one has
    finished: its rows are filtered on a count of the previous one's output, a sub-query
    PostgreSQL evaluates once, before the first row, by running that upsert to completion.
    """
    queries = []
    for n, sql in enumerate(event_rollup_upserts("postgresql", "FROM new_events")):
        if n:
            after = f"FROM new_events WHERE (SELECT count(*) FROM rollup_{n - 1}) >= 0"
            sql = sql.replace("FROM new_events", after, 1)
        queries.append(f"rollup_{n} AS ({sql} RETURNING 1)")
    return ", ".join(queries)


def write_events(conn: Connection, engine: Engine, rows: Sequence[EventRow]) -> list[bool]:
    """Insert events, skipping request ids already stored; update rollups for the new ones.

    Returns, per row, whether it was stored (False: a duplicate). Within `rows`, the first
    occurrence of an (org, request_id) wins.
    """
    if engine.dialect.name == "sqlite":
        stored = _insert_sqlite(conn, rows)
    else:
        stored = _insert_postgres(conn, rows)
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        _count_duplicates(conn, engine, rows, stored)
        return stored
    # The ledger writer's statement was its own transaction: the events are committed, so a
    # failed count must not fail their requests (their retries would then be duplicates).
    try:
        _count_duplicates(conn, engine, rows, stored)
    except Exception:
        log.warning("duplicate count not recorded", exc_info=True)
    return stored


def _insert_postgres(conn: Connection, rows: Sequence[EventRow]) -> list[bool]:
    inserted: set[tuple[str, str]] = set()
    if rows:
        returned = _insert_events("postgresql").execute(conn, [r.params for r in rows])
        inserted = {(org_id, request_id) for org_id, request_id in returned}
    stored: list[bool] = []
    for row in rows:
        ident = (row.params[0], row.params[1])
        stored.append(ident in inserted)
        inserted.discard(ident)  # later rows with the same id are duplicates
    return stored


# SQLite: the only writer while the transaction holds the write lock, so the new events are
# those with ids above the largest before the insert (`id` is the rowid). NOT INDEXED keeps
# the rowid range: to group by org, the planner would otherwise walk every event of the org
# through the (org_id, occurred_at) index.
_SQLITE_NEW_EVENTS = "FROM usage_events NOT INDEXED WHERE id > ?"


def _insert_sqlite(conn: Connection, rows: Sequence[EventRow]) -> list[bool]:
    # With the write lock taken first, every id above the largest read next is ours.
    take_write_lock(conn)
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    stored, new = _first_occurrences(rows)
    (last_id,) = driver.execute("SELECT coalesce(max(id), 0) FROM usage_events").fetchone()
    # Ids stored by earlier commits are skipped by the insert (ON CONFLICT DO NOTHING) rather
    # than looked up first: retries are rare, and the look-up cost a tenth of the commit.
    written = _insert_events("sqlite").execute(conn, new) if new else 0
    if written != len(new):
        _unmark_skipped(driver, rows, stored, after_id=last_id)
    if written:
        for sql in event_rollup_upserts("sqlite", _SQLITE_NEW_EVENTS):
            driver.execute(sql, (last_id,))
    return stored


def _first_occurrences(rows: Sequence[EventRow]) -> tuple[list[bool], list[tuple[Any, ...]]]:
    """Per row, whether it is the first with its (org, request_id); the params of those."""
    seen: set[tuple[str, str]] = set()
    firsts: list[bool] = []
    params: list[tuple[Any, ...]] = []
    for row in rows:
        ident = (row.params[0], row.params[1])
        if ident in seen:
            firsts.append(False)
        else:
            seen.add(ident)
            firsts.append(True)
            params.append(row.params)
    return firsts, params


def _unmark_skipped(
    driver: sqlite3.Connection, rows: Sequence[EventRow], stored: list[bool], *, after_id: int
) -> None:
    """Clear the stored flag of rows the insert skipped: their ids were stored before."""
    cursor = driver.execute(f"SELECT org_id, request_id {_SQLITE_NEW_EVENTS}", (after_id,))
    inserted = set(cursor.fetchall())
    for i, row in enumerate(rows):
        if stored[i] and (row.params[0], row.params[1]) not in inserted:
            stored[i] = False


def _count_duplicates(
    conn: Connection, engine: Engine, rows: Sequence[EventRow], stored: list[bool]
) -> None:
    per_org: dict[str, int] = {}
    for row, was_stored in zip(rows, stored, strict=True):
        if not was_stored:
            per_org[row.org_id] = per_org.get(row.org_id, 0) + 1
    if not per_org:
        return
    today = datetime.now(UTC).date()
    stmt = upsert(engine, ingest_stats)
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_id", "day"],
        set_={"duplicates": ingest_stats.c.duplicates + stmt.excluded.duplicates},
    )
    conn.execute(
        stmt, [{"org_id": o, "day": today, "duplicates": n} for o, n in sorted(per_org.items())]
    )


def driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception: the bulk writes raise it bare, SQLAlchemy wraps it."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def is_busy(exc: BaseException) -> bool:
    """SQLite's 'database is locked' / 'busy': worth retrying, never the client's fault."""
    name = getattr(driver_error(exc), "sqlite_errorname", "")
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached or written now (503, retry later).

    Programming errors (no such column, bad SQL) and values the database rejects are not:
    they stay errors, answered 500 and logged.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    error = driver_error(exc)
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorname", "").startswith(_SQLITE_UNAVAILABLE)
    # PostgreSQL: lost or refused connections, shutdowns, disk full, too many connections.
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def take_write_lock(conn: Connection) -> None:
    """SQLite: begin the transaction with the write lock, waiting for it (busy timeout).

    A transaction that reads first and writes later cannot take the lock once another
    connection has committed since its read: SQLite fails that write at once ("database is
    locked"), without waiting. Under ingest, the ledger writer commits many times a second, so
    every read-then-write transaction (re-pricing, revenue) must lock before it reads.
    """
    driver = conn.connection.driver_connection
    if isinstance(driver, sqlite3.Connection) and not driver.in_transaction:
        driver.execute("BEGIN IMMEDIATE")


def run_transaction(
    engine: Engine,
    work: Callable[[Connection], Any],
    *,
    connect: Callable[[], Connection] | None = None,
) -> Any:
    """Run `work`, which writes, in a transaction, retrying SQLite busy errors;
    unavailability → exception.

    The transaction runs on a connection from the pool, or on the one `connect` gives (which
    stays open afterwards).
    """
    for attempt in range(_BUSY_RETRIES):
        try:
            if connect is not None:
                conn = connect()
                with conn.begin():
                    take_write_lock(conn)
                    return work(conn)
            with engine.begin() as conn:
                take_write_lock(conn)
                return work(conn)
        except Exception as exc:
            if is_busy(exc) and attempt < _BUSY_RETRIES - 1:
                time.sleep(0.05 * 2**attempt)
                continue
            if is_unavailable(exc):
                raise DatabaseUnavailable(str(driver_error(exc))) from exc
            raise
    raise AssertionError("unreachable")


Outcome = list[bool] | BaseException  # a job's stored flags, or why its commit failed


@dataclass(slots=True)
class _Job:
    rows: Sequence[EventRow]
    future: Future[list[bool]] | asyncio.Future[list[bool]]
    loop: asyncio.AbstractEventLoop | None = None  # the loop `future` belongs to, if any


CommitHook = Callable[[Sequence[EventRow]], None]


# The writer keeps its connection between commits: checking one out of the pool, with the
# pool's liveness ping (a round trip on PostgreSQL) and its bookkeeping, cost a good part of a
# small commit. Measured (`bench/`, single events, 32 clients, two A/B pairs): 1.13x req/s on
# PostgreSQL; SQLite unchanged. After this long without a commit the connection goes back to
# the pool, so the next commit gets a pinged one: a database restarted while the writer was
# idle costs no request an error.
KEEP_IDLE_CONNECTION_S = 1.0


class LedgerWriter:
    """A thread that writes submitted event rows with group commit.

    `after_commit` hooks get the rows each commit stored (duplicates left out), in the writer
    thread: they must be quick (budget checks hand work to their own queue).
    """

    def __init__(self, engine: Engine, *, after_commit: Sequence[CommitHook] = ()):
        self.engine = engine
        self.after_commit = list(after_commit)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None  # used by the writer thread only
        self._last_commit = 0.0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, rows: Sequence[EventRow]) -> Future[list[bool]]:
        """Queue rows for the next commit (from any thread); the future gives each row's
        stored flag."""
        future: Future[list[bool]] = Future()
        self._enqueue(_Job(rows, future))
        return future

    async def write(self, rows: Sequence[EventRow]) -> list[bool]:
        """Queue rows for the next commit and wait for it; each row's stored flag.

        The writer settles every waiting request of an event loop with one callback into that
        loop, not one wake-up per request: about 4 µs of CPU per request instead of 20.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        self._enqueue(_Job(rows, future, loop))
        return await future

    def _enqueue(self, job: _Job) -> None:
        if self._thread is None:
            _settle(job.future, RuntimeError("ledger writer is not running"))
        else:
            self._queue.put(job)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs = [first]
            size = len(first.rows)
            while size < _MAX_GROUP_ROWS:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
                size += len(job.rows)
            self._commit(jobs)
        self._release_connection()

    def _commit(self, jobs: list[_Job]) -> None:
        rows = [row for job in jobs for row in job.rows]
        try:
            stored = run_transaction(
                self.engine,
                lambda conn: write_events(conn, self.engine, rows),
                connect=self._held_connection,
            )
        except Exception as exc:  # every waiting request must hear about the failure
            log.warning("ledger write failed: %s", exc)
            self._release_connection()  # it may be broken: the next commit takes a pinged one
            _hand_back(jobs, [exc] * len(jobs))
            return
        outcomes: list[Outcome] = []
        offset = 0
        for job in jobs:
            outcomes.append(stored[offset : offset + len(job.rows)])
            offset += len(job.rows)
        _hand_back(jobs, outcomes)
        self._last_commit = time.monotonic()
        new_rows = [row for row, was_stored in zip(rows, stored, strict=True) if was_stored]
        for hook in self.after_commit:
            try:
                hook(new_rows)
            except Exception:  # a hook must never lose or fail an acknowledged write
                log.exception("after-commit hook failed")

    def _held_connection(self) -> Connection:
        """The writer's connection, taken from the pool again after an idle spell."""
        if time.monotonic() - self._last_commit > KEEP_IDLE_CONNECTION_S:
            self._release_connection()
        if self._connection is None:
            self._connection = self.engine.connect()
            if self.engine.dialect.name == "postgresql":
                # One statement writes a commit's events and rollups (`write_events`), so it
                # can be the transaction: no BEGIN and COMMIT round trips around it. The pool
                # restores the isolation level when the connection goes back.
                self._connection.execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def _release_connection(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()  # back to the pool, or discarded if it was invalidated
            except Exception:  # a broken connection must not stop the writer
                log.warning("ledger writer connection not closed cleanly", exc_info=True)


def _hand_back(jobs: Sequence[_Job], outcomes: Sequence[Outcome]) -> None:
    """Settle each job's future: thread futures directly, loop futures in one call per loop."""
    per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[bool]], Outcome]]]
    per_loop = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        if job.loop is None:
            _settle(job.future, outcome)
        else:
            assert isinstance(job.future, asyncio.Future)
            per_loop.setdefault(job.loop, []).append((job.future, outcome))
    for loop, settled in per_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, settled)
        except RuntimeError:  # the loop has closed: nobody waits for these any more
            log.info("ledger writer: %d results for a closed event loop dropped", len(settled))


def _settle_all(settled: list[tuple[asyncio.Future[list[bool]], Outcome]]) -> None:
    for future, outcome in settled:
        _settle(future, outcome)


def _settle(future: Future[list[bool]] | asyncio.Future[list[bool]], outcome: Outcome) -> None:
    # A cancelled wait (its request went away) has nobody to tell; setting it would raise and
    # take the writer thread down with it.
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
