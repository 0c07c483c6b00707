"""Engines for SQLite (the embedded default) and PostgreSQL, and dialect-specific SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ColumnElement

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A PostgreSQL that cannot be reached must fail a connection attempt (503) rather than hang it:
# a silent network would otherwise hold every request, and the writer, for minutes.
POSTGRES_CONNECT_TIMEOUT_S = 5


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    """An engine for the URL; SQLite files get WAL, durable commits and a busy timeout, and
    PostgreSQL connection attempts a timeout."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        given = kwargs.get("connect_args", {})
        kwargs["connect_args"] = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S, **given}
    return create_engine(url, **kwargs)


def ping(engine: Engine) -> None:
    """One round trip to the database; raises `SQLAlchemyError` when it cannot be reached."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL makes every commit durable across power loss; group commit amortises the fsync.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # 64 MiB of page cache (the default is 2 MiB): the ledger's indexes outgrow 2 MiB within
    # a few hundred thousand events, and every insert then reads its index pages back in.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def upsert(engine: Engine, table: Table) -> postgresql.Insert | sqlite.Insert:
    """INSERT … ON CONFLICT for the engine's dialect (both SQLite and PostgreSQL have it)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def greatest(engine: Engine, left: Any, right: Any) -> ColumnElement[Any]:
    """The larger of two values: GREATEST on PostgreSQL, two-argument MAX on SQLite."""
    if engine.dialect.name == "postgresql":
        return func.greatest(left, right)
    return func.max(left, right)
