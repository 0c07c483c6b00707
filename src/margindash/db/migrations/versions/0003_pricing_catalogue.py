"""price catalogue history, sync runs, re-pricing runs; dated aliases, ending and deleting overrides

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "price_snapshots",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_count", sa.Integer(), nullable=False),
        sa.Column("model_count", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("review_reasons", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=255), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_snapshots")),
    )
    op.create_index(
        op.f("ix_price_snapshots_status_effective_from"),
        "price_snapshots",
        ["status", "effective_from"],
    )
    op.create_index(op.f("ix_price_snapshots_sha256"), "price_snapshots", ["sha256"])
    op.create_table(
        "model_prices",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("time_window", sa.String(length=32), nullable=True),
        sa.Column("input_per_mtok", sa.String(length=48), nullable=True),
        sa.Column("cached_input_per_mtok", sa.String(length=48), nullable=True),
        sa.Column("cache_write_per_mtok", sa.String(length=48), nullable=True),
        sa.Column("output_per_mtok", sa.String(length=48), nullable=True),
        sa.Column("tiers", sa.Text(), nullable=True),
        sa.Column("other_prices", sa.Text(), nullable=True),
        sa.Column("context_window", sa.BigInteger(), nullable=True),
        sa.Column("deprecated", sa.Boolean(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["price_snapshots.id"],
            name=op.f("fk_model_prices_snapshot_id_price_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_prices")),
        sa.UniqueConstraint(
            "snapshot_id",
            "provider",
            "model",
            "position",
            name=op.f("uq_model_prices_snapshot_id_provider_model_position"),
        ),
    )
    op.create_table(
        "price_changes",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("old_prices", sa.Text(), nullable=True),
        sa.Column("new_prices", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["price_snapshots.id"],
            name=op.f("fk_price_changes_snapshot_id_price_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_changes")),
    )
    op.create_index(op.f("ix_price_changes_snapshot_id"), "price_changes", ["snapshot_id"])
    op.create_table(
        "pricing_sync_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("triggered_by", sa.String(length=16), nullable=False),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("model_count", sa.Integer(), nullable=True),
        sa.Column("models_added", sa.Integer(), nullable=True),
        sa.Column("models_removed", sa.Integer(), nullable=True),
        sa.Column("models_repriced", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pricing_sync_runs")),
    )
    op.create_index(op.f("ix_pricing_sync_runs_started_at"), "pricing_sync_runs", ["started_at"])
    op.create_table(
        "repricing_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=True),
        sa.Column("date_to", sa.Date(), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("examined_events", sa.BigInteger(), nullable=False),
        sa.Column("changed_events", sa.BigInteger(), nullable=False),
        sa.Column("newly_priced_events", sa.BigInteger(), nullable=False),
        sa.Column("cost_before_nanos", sa.BigInteger(), nullable=False),
        sa.Column("cost_after_nanos", sa.BigInteger(), nullable=False),
        sa.Column("by_model", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repricing_runs")),
    )
    op.create_index(
        op.f("ix_repricing_runs_org_id_started_at"), "repricing_runs", ["org_id", "started_at"]
    )
    with op.batch_alter_table("model_aliases") as batch:
        batch.add_column(
            sa.Column("effective_from", sa.Date(), nullable=False, server_default="1970-01-01")
        )
        batch.drop_constraint("uq_model_aliases_org_id_alias", type_="unique")
        batch.create_unique_constraint(
            "uq_model_aliases_org_id_alias_effective_from", ["org_id", "alias", "effective_from"]
        )
    with op.batch_alter_table("price_overrides") as batch:
        batch.add_column(sa.Column("effective_to", sa.Date(), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("price_overrides") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("effective_to")
    # One alias per name again: the most recently added wins.
    op.execute(
        "DELETE FROM model_aliases WHERE id NOT IN "
        "(SELECT MAX(id) FROM model_aliases GROUP BY org_id, alias)"
    )
    with op.batch_alter_table("model_aliases") as batch:
        batch.drop_constraint("uq_model_aliases_org_id_alias_effective_from", type_="unique")
        batch.create_unique_constraint("uq_model_aliases_org_id_alias", ["org_id", "alias"])
        batch.drop_column("effective_from")
    op.drop_index(op.f("ix_repricing_runs_org_id_started_at"), table_name="repricing_runs")
    op.drop_table("repricing_runs")
    op.drop_index(op.f("ix_pricing_sync_runs_started_at"), table_name="pricing_sync_runs")
    op.drop_table("pricing_sync_runs")
    op.drop_index(op.f("ix_price_changes_snapshot_id"), table_name="price_changes")
    op.drop_table("price_changes")
    op.drop_table("model_prices")
    op.drop_index(op.f("ix_price_snapshots_sha256"), table_name="price_snapshots")
    op.drop_index(op.f("ix_price_snapshots_status_effective_from"), table_name="price_snapshots")
    op.drop_table("price_snapshots")
