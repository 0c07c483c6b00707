"""simulator: an org's own benchmark scores and weights

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "benchmark_scores",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("feature", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("benchmark", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("published_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "org_id", "feature", "model", "benchmark", name=op.f("pk_benchmark_scores")
        ),
    )
    op.create_table(
        "benchmark_weights",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("feature", sa.String(length=255), nullable=False),
        sa.Column("benchmark", sa.String(length=64), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "org_id", "feature", "benchmark", name=op.f("pk_benchmark_weights")
        ),
    )


def downgrade() -> None:
    op.drop_table("benchmark_weights")
    op.drop_table("benchmark_scores")
