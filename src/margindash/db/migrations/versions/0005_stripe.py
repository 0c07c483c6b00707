"""stripe sync: raw events, object snapshots, references, entries, mappings, settings, state

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stripe_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("api_version", sa.String(length=64), nullable=True),
        sa.Column("object_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
        sa.UniqueConstraint("org_id", "event_id", name=op.f("uq_stripe_events_org_id_event_id")),
    )
    op.create_index(op.f("ix_stripe_events_status"), "stripe_events", ["status"], unique=False)

    op.create_table(
        "stripe_objects",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("seen_at", _TS, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("closed_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "livemode", "object_id", name=op.f("pk_stripe_objects")),
    )
    op.create_index(
        op.f("ix_stripe_objects_org_id_livemode_customer_ref"),
        "stripe_objects",
        ["org_id", "livemode", "customer_ref"],
        unique=False,
    )
    op.create_index(
        op.f("ix_stripe_objects_org_id_object_type"),
        "stripe_objects",
        ["org_id", "object_type"],
        unique=False,
    )

    op.create_table(
        "stripe_refs",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("ref_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint(
            "org_id", "livemode", "object_id", "ref_id", name=op.f("pk_stripe_refs")
        ),
    )
    op.create_index(
        op.f("ix_stripe_refs_org_id_livemode_ref_id"),
        "stripe_refs",
        ["org_id", "livemode", "ref_id"],
        unique=False,
    )

    op.create_table(
        "stripe_entries",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("revenue_id", sa.String(length=255), nullable=False),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "revenue_id", name=op.f("pk_stripe_entries")),
    )
    op.create_index(
        op.f("ix_stripe_entries_org_id_livemode_object_id"),
        "stripe_entries",
        ["org_id", "livemode", "object_id"],
        unique=False,
    )

    op.create_table(
        "stripe_customer_mappings",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint(
            "org_id", "stripe_customer_id", name=op.f("pk_stripe_customer_mappings")
        ),
    )

    op.create_table(
        "stripe_org_settings",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("webhook_secrets", sa.Text(), nullable=True),
        sa.Column("mode", sa.String(length=8), nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_stripe_org_settings")),
    )

    op.create_table(
        "stripe_sync_state",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "name", name=op.f("pk_stripe_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("stripe_sync_state")
    op.drop_table("stripe_org_settings")
    op.drop_table("stripe_customer_mappings")
    op.drop_index(op.f("ix_stripe_entries_org_id_livemode_object_id"), table_name="stripe_entries")
    op.drop_table("stripe_entries")
    op.drop_index(op.f("ix_stripe_refs_org_id_livemode_ref_id"), table_name="stripe_refs")
    op.drop_table("stripe_refs")
    op.drop_index(op.f("ix_stripe_objects_org_id_object_type"), table_name="stripe_objects")
    op.drop_index(
        op.f("ix_stripe_objects_org_id_livemode_customer_ref"), table_name="stripe_objects"
    )
    op.drop_table("stripe_objects")
    op.drop_index(op.f("ix_stripe_events_status"), table_name="stripe_events")
    op.drop_table("stripe_events")
