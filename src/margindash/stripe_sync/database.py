"""Transactions of the Stripe sync: retried when SQLite is busy, and any database error turned
into DatabaseUnavailable, so a webhook answers 503 (Stripe retries) rather than 500."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from margindash.ledger.writer import DatabaseUnavailable, run_transaction

T = TypeVar("T")
# Rollups are written through the driver (margindash.db.bulk), so its own errors arrive unwrapped.
DATABASE_ERRORS = (SQLAlchemyError, sqlite3.Error, psycopg.Error)


def in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction; any database error becomes DatabaseUnavailable."""
    try:
        result: T = run_transaction(engine, work)
    except DATABASE_ERRORS as exc:
        if _client_value_refused(exc):
            raise  # a value no database can store (NUL): the API answers 422, not "retry"
        raise DatabaseUnavailable(f"database error: {getattr(exc, 'orig', None) or exc}") from exc
    return result


def _client_value_refused(exc: BaseException) -> bool:
    error = getattr(exc, "orig", None) or exc
    return isinstance(error, psycopg.DataError) and "NUL (0x00)" in str(error)
