"""customer_months rollup

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MEASURES = (
    "events",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "unpriced_events",
    "estimated_events",
    "revenue_nanos",
    "max_prompt_tokens",
)


def upgrade() -> None:
    op.create_table(
        "customer_months",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in MEASURES),
        sa.PrimaryKeyConstraint("org_id", "month", "customer_id", name=op.f("pk_customer_months")),
    )
    # Existing data: derive the new rollup from the monthly one.
    sums = ", ".join(
        f"MAX({name})" if name == "max_prompt_tokens" else f"SUM({name})" for name in MEASURES
    )
    op.execute(
        f"INSERT INTO customer_months (org_id, month, customer_id, {', '.join(MEASURES)}) "
        f"SELECT org_id, month, customer_id, {sums} FROM monthly_rollups "
        "GROUP BY org_id, month, customer_id"
    )


def downgrade() -> None:
    op.drop_table("customer_months")
