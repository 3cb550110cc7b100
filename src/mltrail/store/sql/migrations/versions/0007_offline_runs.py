"""Offline runs and the store's identity: ``experiments.client_id`` (the id a run started
offline generated for itself, unique, so creating it again returns the same experiment) and
``store_identity`` (one row: the id this database reports, which SDK spools are keyed by).

Revision ID: 0007_offline_runs
Revises: 0008_security
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0007_offline_runs"
down_revision = "0008_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add experiments.client_id (unique where set) and store_identity with a new id."""
    op.add_column("experiments", sa.Column("client_id", sa.String(length=64), nullable=True))
    op.create_index("uq_experiments_client_id", "experiments", ["client_id"], unique=True)
    identity = op.create_table(
        "store_identity",
        sa.Column("store_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("store_id"),
    )
    op.bulk_insert(identity, [{"store_id": uuid.uuid4().hex, "created_at": time.time()}])


def downgrade() -> None:
    """Drop both."""
    op.drop_table("store_identity")
    op.drop_index("uq_experiments_client_id", table_name="experiments")
    # in place: a batch copy drops the table, and foreign keys then delete what it owns
    op.execute("ALTER TABLE experiments DROP COLUMN client_id")
