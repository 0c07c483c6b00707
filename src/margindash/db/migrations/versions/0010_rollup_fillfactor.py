"""rollups: leave room on PostgreSQL pages for in-place (HOT) updates

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ROLLUPS = ("daily_rollups", "monthly_rollups", "customer_months")


def upgrade() -> None:
    # Every event rewrites a row of each rollup table. A full page forces the new version
    # onto another page, with a new entry in the primary key index, and leaves the old one
    # for VACUUM; with room on the page, the update stays on it and is pruned without VACUUM.
    # Pages already full keep their rows until they are next rewritten.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _ROLLUPS:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _ROLLUPS:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
