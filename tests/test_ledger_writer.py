"""The ledger writer: rollups built by the database equal a regrouping of the stored events."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, QueuePool, func, insert, select, text

from margindash.db.bulk import _COPY_MIN_ROWS, BulkInsert
from margindash.db.engine import make_engine
from margindash.db.tables import (
    ROLLUP_MEASURES,
    customer_months,
    daily_rollups,
    ingest_stats,
    monthly_rollups,
    usage_events,
)
from margindash.ledger.events import EventRules
from margindash.ledger.ingest import UsageIngestor
from margindash.ledger.rollups import event_rollup_upserts
from margindash.ledger.writer import _SQLITE_NEW_EVENTS, LedgerWriter, run_transaction
from margindash.money import NANOS_PER_CENT
from margindash.orgs.service import create_org
from margindash.pricing.service import Pricer

MODELS = ("gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash", "in-house-llama")
NOW = datetime.now(UTC).replace(microsecond=0)


def random_event(rng: random.Random, n: int) -> dict[str, Any]:
    """An event with every measure in play: cache and reasoning tokens, revenue, estimates."""
    prompt = rng.randint(0, 50_000)
    completion = rng.randint(0, 5_000)
    event: dict[str, Any] = {
        "request_id": f"req-{n}",
        "customer_id": f"cust-{rng.randint(1, 6)}",
        "feature": rng.choice(("chat", "search", "summarize")),
        "model_name": rng.choice(MODELS),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": rng.randint(0, prompt // 2),
        "reasoning_tokens": rng.randint(0, completion),
        # Two months, and hours either side of midnight in the org's time zone.
        "timestamp": (NOW - timedelta(hours=rng.randint(0, 24 * 45))).isoformat(),
    }
    if rng.random() < 0.3:
        event["revenue_amount_cents"] = rng.randint(0, 10_000)
    if rng.random() < 0.1:  # estimated from characters (strict mode is off)
        del event["completion_tokens"], event["reasoning_tokens"]
        event["completion_chars"] = rng.randint(0, 20_000)
    return event


def direct_ingestor(engine: Engine, *, strict: bool) -> UsageIngestor:
    """An ingestor writing in the caller's thread (strict off also accepts estimated events)."""
    rules = EventRules(strict=strict, estimate_factor=1.1, max_age=timedelta(days=400))
    return UsageIngestor(engine=engine, pricer=Pricer(engine), rules=rules)


def regrouped(engine: Engine, org_id: str) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    """What each rollup table should hold, summed in Python from the stored events."""
    e = usage_events.c
    sums: dict[str, dict[tuple[Any, ...], list[int]]] = {
        "daily": defaultdict(lambda: [0] * 11),
        "monthly": defaultdict(lambda: [0] * 11),
        "customers": defaultdict(lambda: [0] * 11),
    }
    with engine.connect() as conn:
        events = conn.execute(select(usage_events).where(e.org_id == org_id)).all()
    for row in events:
        month = row.day.replace(day=1)
        measures = (
            1,
            row.prompt_tokens,
            row.completion_tokens,
            row.cached_tokens,
            row.cache_write_tokens,
            row.reasoning_tokens,
            row.cost_nanos or 0,
            int(row.cost_nanos is None),
            int(row.estimated),
            (row.revenue_cents or 0) * NANOS_PER_CENT,
        )
        for table, key in (
            ("daily", (row.day, row.customer_id, row.feature, row.model)),
            ("monthly", (month, row.customer_id, row.feature, row.model)),
            ("customers", (month, row.customer_id)),
        ):
            total = sums[table][key]
            for i, value in enumerate(measures):
                total[i] += value
            total[10] = max(total[10], row.prompt_tokens)
    return {name: {k: tuple(v) for k, v in rows.items()} for name, rows in sums.items()}


def stored(engine: Engine, org_id: str) -> dict[str, dict[tuple[Any, ...], tuple[int, ...]]]:
    result = {}
    with engine.connect() as conn:
        for name, table, key in (
            ("daily", daily_rollups, ("day", "customer_id", "feature", "model")),
            ("monthly", monthly_rollups, ("month", "customer_id", "feature", "model")),
            ("customers", customer_months, ("month", "customer_id")),
        ):
            rows = conn.execute(select(table).where(table.c.org_id == org_id)).all()
            result[name] = {
                tuple(getattr(r, k) for k in key): tuple(getattr(r, m) for m in ROLLUP_MEASURES)
                for r in rows
            }
    return result


def test_rollups_equal_the_stored_events_regrouped(engine: Engine) -> None:
    org = create_org(engine, name="acme", timezone="America/New_York").org
    other = create_org(engine, name="globex").org
    ingestor = direct_ingestor(engine, strict=False)
    rng = random.Random(7)
    events = [random_event(rng, n) for n in range(600)]
    # Several commits, with duplicates inside one and of earlier commits; another org alongside.
    for start in range(0, 600, 150):
        chunk = events[start : start + 150]
        repeated = chunk + chunk[:10] + events[:5]
        report = ingestor.ingest_now(org=org, raw_events=repeated)
        assert report.count("accepted") == 150
        assert report.count("duplicate") == 15
        ingestor.ingest_now(org=other, raw_events=chunk[:20])

    expected = regrouped(engine, org.id)
    assert stored(engine, org.id) == expected
    # The data covered what the rollups must get right, so the comparison means something.
    assert len(expected["customers"]) > 6  # two or more months
    daily = expected["daily"].values()
    assert sum(m[7] for m in daily) > 0  # unpriced events
    assert sum(m[8] for m in daily) > 0  # estimated events
    assert sum(m[9] for m in daily) > 0  # revenue
    assert stored(engine, other.id) == regrouped(engine, other.id)


def test_sqlite_rollup_upserts_read_only_the_new_events(sqlite_url: str) -> None:
    """Each commit's rollup statements reach the new rows by rowid, never by walking the org's
    events (which would make every commit slower as the ledger grows)."""
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        for sql in event_rollup_upserts("sqlite", _SQLITE_NEW_EVENTS):
            plan = " | ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (0,)))
            assert "SEARCH usage_events USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
            assert "SCAN usage_events" not in plan, plan


def test_day_keys_are_org_local(engine: Engine) -> None:
    """An event at 02:00 UTC belongs to the previous day in New York, in every rollup."""
    org = create_org(engine, name="acme", timezone="America/New_York").org
    ingestor = direct_ingestor(engine, strict=True)
    at = (NOW - timedelta(days=3)).replace(hour=2, minute=0, second=0)
    event = {
        "request_id": "late-night",
        "customer_id": "c1",
        "model_name": "gpt-4o-mini",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "timestamp": at.isoformat(),
    }
    ingestor.ingest_now(org=org, raw_events=[event])
    (day,) = stored(engine, org.id)["daily"]
    assert day[0] == at.date() - timedelta(days=1)
    assert isinstance(day[0], date)


def test_a_commit_larger_than_a_bulk_chunk_keeps_rollups_exact(engine: Engine) -> None:
    """12,000 events in one transaction: more than one chunk of rows (SQLite statements of at
    most 1,000 rows; PostgreSQL stages them all with one COPY)."""
    org = create_org(engine, name="acme").org
    ingestor = direct_ingestor(engine, strict=False)
    rng = random.Random(11)
    events = [random_event(rng, n) for n in range(12_000)]
    report = ingestor.ingest_now(org=org, raw_events=events + events[:3])
    assert (report.count("accepted"), report.count("duplicate")) == (12_000, 3)
    expected = regrouped(engine, org.id)
    assert sum(m[0] for m in expected["daily"].values()) == 12_000
    assert stored(engine, org.id) == expected


@pytest.mark.parametrize("size", [30, 300])  # PostgreSQL: below and above _COPY_MIN_ROWS
def test_the_writer_commits_and_hands_back_a_transactional_connection(
    engine: Engine, size: int
) -> None:
    """The writer thread's commits are complete when acknowledged (events, rollups, duplicates
    counted), and the connection it hands back to the pool runs transactions again: on
    PostgreSQL its own statement is the transaction (autocommit), which must not leak."""
    org = create_org(engine, name="acme").org
    ingestor = direct_ingestor(engine, strict=False)
    rng = random.Random(5)
    overlap = size // 3
    events = [random_event(rng, n) for n in range(2 * size - overlap)]
    writer = LedgerWriter(engine)
    writer.start()
    try:
        # The second repeats `overlap` ids of the first, and one of its own.
        for chunk in (events[:size], events[size - overlap :] + events[-1:]):
            flags = writer.submit(ingestor.prepare(org=org, raw_events=chunk)[1]).result(30)
    finally:
        writer.stop()  # its connection goes back to the pool
    assert flags == [False] * overlap + [True] * (size - overlap) + [False]
    assert stored(engine, org.id) == regrouped(engine, org.id)
    with engine.connect() as conn:
        counted = conn.execute(
            select(func.sum(ingest_stats.c.duplicates)).where(ingest_stats.c.org_id == org.id)
        ).scalar_one()
    assert counted == overlap + 1

    # Every pooled connection at once, so the writer's is among them.
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    connections = [engine.connect() for _ in range(pool.checkedin())]
    try:
        for n, conn in enumerate(connections):
            row = {"org_id": org.id, "day": date(2000, 1, n + 1), "duplicates": 1}
            conn.execute(insert(ingest_stats).values(**row))
            conn.rollback()
    finally:
        for conn in connections:
            conn.close()
    with engine.connect() as conn:
        left = conn.execute(
            select(func.count()).where(ingest_stats.c.day < date(2001, 1, 1))
        ).scalar_one()
    assert left == 0, "a rolled-back insert stayed: a pooled connection is in autocommit"


def test_a_request_that_stops_waiting_does_not_stop_the_writer(engine: Engine) -> None:
    """Requests wait for their commit on the event loop. One that is cancelled while its rows
    are queued (its client went away, the server shuts down) has nobody to tell: the writer
    settles the others of that commit and goes on writing."""
    org = create_org(engine, name="acme").org
    ingestor = direct_ingestor(engine, strict=False)
    rng = random.Random(6)
    batches = [
        ingestor.prepare(org=org, raw_events=[random_event(rng, 10 * b + n) for n in range(10)])[1]
        for b in range(4)
    ]
    first_committed, carry_on = threading.Event(), threading.Event()

    def hold_after_first_commit(rows: Any) -> None:
        if not first_committed.is_set():
            first_committed.set()
            carry_on.wait(30)  # the writer thread waits here while the loop queues more

    async def scenario() -> list[list[bool]]:
        first = asyncio.create_task(writer.write(batches[0]))
        await asyncio.to_thread(first_committed.wait, 30)
        gone = asyncio.create_task(writer.write(batches[1]))
        kept = asyncio.create_task(writer.write(batches[2]))
        await asyncio.sleep(0.05)  # both are queued behind the held writer
        gone.cancel()
        carry_on.set()
        waited = [await asyncio.wait_for(task, 30) for task in (first, kept)]
        return [*waited, await asyncio.wait_for(writer.write(batches[3]), 30)]

    writer = LedgerWriter(engine, after_commit=[hold_after_first_commit])
    writer.start()
    try:
        flags = asyncio.run(scenario())
    finally:
        carry_on.set()
        writer.stop()
    assert flags == [[True] * 10] * 3
    with engine.connect() as conn:
        events = conn.execute(
            select(func.count()).where(usage_events.c.org_id == org.id)
        ).scalar_one()
    assert events == 40  # the cancelled request's rows were committed with their group
    assert stored(engine, org.id) == regrouped(engine, org.id)


def test_a_write_after_a_read_is_not_failed_by_commits_in_between(sqlite_url: str) -> None:
    """SQLite fails at once (no busy wait) a transaction that read, then writes after another
    connection committed. Re-pricing reads the events, then moves rollups, while the ledger
    writer commits many times a second: `run_transaction` must lock before the first read."""
    engine = make_engine(sqlite_url)
    org_id = create_org(engine, name="acme").org.id
    others: list[threading.Thread] = []

    def commit_elsewhere(n: int) -> None:
        with engine.begin() as conn:  # waits (busy timeout) while the transaction holds the lock
            row = {"org_id": org_id, "day": date(2000, 1, n + 1), "duplicates": 1}
            conn.execute(insert(ingest_stats).values(**row))

    def read_then_write(conn: Any) -> None:
        # A temporary table write opens the transaction, as re-pricing's does; then a read.
        conn.execute(text("CREATE TEMP TABLE IF NOT EXISTS scratch (n INTEGER)"))
        conn.execute(text("INSERT INTO scratch VALUES (1)"))
        conn.execute(select(func.count()).select_from(ingest_stats)).scalar_one()
        other = threading.Thread(target=commit_elsewhere, args=(len(others),))
        others.append(other)
        other.start()
        other.join(0.5)  # it commits now, unless this transaction holds the write lock
        row = {"org_id": org_id, "day": date(2001, 1, 1), "duplicates": 7}
        conn.execute(insert(ingest_stats).values(**row))

    try:
        run_transaction(engine, read_then_write)
        for other in others:
            other.join(10)
        with engine.connect() as conn:
            stats = conn.execute(select(ingest_stats.c.duplicates)).scalars().all()
    finally:
        engine.dispose()
    assert len(others) == 1, "the transaction was retried"
    assert sorted(stats) == [1, 7]


def test_postgres_staged_inserts_keep_apart_and_survive_a_rollback(postgres_url: str) -> None:
    """Large PostgreSQL inserts go through a per-connection staging table: a second insert in
    the same transaction must not insert the first one's rows again, and a rollback of the
    transaction that created the table must not break the next insert."""
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)  # one connection for all
    statement = BulkInsert(
        dialect="postgresql",
        table=ingest_stats,
        columns=("org_id", "day", "duplicates"),
        conflict=("org_id", "day"),
        on_conflict="DO UPDATE SET duplicates = ingest_stats.duplicates + excluded.duplicates",
    )
    days = [date(2001, 1, 1) + timedelta(days=n) for n in range(2 * _COPY_MIN_ROWS)]
    rows = [("org_x", day, 1) for day in days]
    try:
        with engine.connect() as conn:  # first use of the staging table, rolled back
            assert statement.execute(conn, rows[:_COPY_MIN_ROWS]) == _COPY_MIN_ROWS
            conn.rollback()
        with engine.begin() as conn:
            assert statement.execute(conn, rows[:_COPY_MIN_ROWS]) == _COPY_MIN_ROWS
            assert statement.execute(conn, rows[_COPY_MIN_ROWS:]) == _COPY_MIN_ROWS
        with engine.connect() as conn:
            totals = conn.execute(
                select(func.count(), func.sum(ingest_stats.c.duplicates)).where(
                    ingest_stats.c.org_id == "org_x"
                )
            ).one()
    finally:
        engine.dispose()
    assert tuple(totals) == (2 * _COPY_MIN_ROWS, 2 * _COPY_MIN_ROWS)


def test_postgres_rollup_rows_are_rewritten_in_place(postgres_url: str) -> None:
    """Rollup pages keep room for new row versions, so updating a row keeps it on its page
    (a HOT update: no index write, the old version pruned without VACUUM). Filled pages
    would put nearly every new version of the first update on another page."""
    zeros = ", ".join("0" for _ in ROLLUP_MEASURES)
    engine = make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO customer_months (org_id, month, customer_id, "
                    f"{', '.join(ROLLUP_MEASURES)}) SELECT 'org_ff', DATE '2026-01-01', "
                    f"'customer-' || n, {zeros} FROM generate_series(1, 2000) AS n"
                )
            )
        with engine.begin() as conn:
            conn.execute(text("UPDATE customer_months SET events = events + 1"))
            updated, in_place = conn.execute(
                text(
                    "SELECT pg_stat_get_xact_tuples_updated(t), "
                    "pg_stat_get_xact_tuples_hot_updated(t) "
                    "FROM CAST('customer_months' AS regclass) AS t"
                )
            ).one()
    finally:
        engine.dispose()
    assert updated == 2000
    assert in_place >= 2000 // 4, f"only {in_place} of {updated} updates stayed on their page"
