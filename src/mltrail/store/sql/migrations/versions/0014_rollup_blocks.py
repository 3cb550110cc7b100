"""Packed blocks of complete rollup buckets (``metric_rollup_blocks``), so a chart read fetches
a few blobs instead of one row per bucket.

Buckets already stored stay rows and read as before: a read joins a level's blocks and rows,
and an append seals the complete blocks of the levels it fills (store/sql/rollup_sealing.py).

Revision ID: 0014_rollup_blocks
Revises: 0013_project_lifecycle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_rollup_blocks"
down_revision = "0013_project_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table (empty: existing buckets stay rows, readable as they are)."""
    op.create_table(
        "metric_rollup_blocks",
        sa.Column(
            "series_id",
            sa.Integer(),
            sa.ForeignKey("metric_series.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("block", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("first_iteration", sa.BigInteger(), nullable=False),
        sa.Column("last_iteration", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    """Unpack every block back into rows, then drop the table."""
    from mltrail.store.sql.rollup_sealing import unpack_all

    unpack_all(op.get_bind())
    op.drop_table("metric_rollup_blocks")
