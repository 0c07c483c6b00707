"""Migration 0005 creates exactly the Stripe tables that `db/tables.py` declares."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from margindash.db.tables import metadata

STRIPE_TABLES = {
    "stripe_events",
    "stripe_objects",
    "stripe_refs",
    "stripe_entries",
    "stripe_customer_mappings",
    "stripe_org_settings",
    "stripe_sync_state",
}


def test_the_stripe_migration_matches_the_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if _table_of(d) in STRIPE_TABLES] == []


def _table_of(change: Any) -> str:
    item = change[0] if isinstance(change, list) else change
    kind, *rest = item
    if kind.endswith("_table"):
        return str(rest[0].name)
    if kind.endswith("_column") or kind.startswith("modify_"):
        return str(rest[1])
    return str(rest[0].table.name)
