"""usage_events: index only unpriced events by model

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_UNPRICED = sa.text("cost_nanos IS NULL")


def upgrade() -> None:
    # The full (org_id, model_name, cost_nanos) index cost every insert and every re-priced
    # event an index write; only unpriced events are ever looked up by model.
    op.drop_index("ix_usage_events_org_id_model_name_cost_nanos", table_name="usage_events")
    op.create_index(
        "ix_usage_events_unpriced",
        "usage_events",
        ["org_id", "model_name"],
        sqlite_where=_UNPRICED,
        postgresql_where=_UNPRICED,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_events_unpriced", table_name="usage_events")
    op.create_index(
        "ix_usage_events_org_id_model_name_cost_nanos",
        "usage_events",
        ["org_id", "model_name", "cost_nanos"],
    )
