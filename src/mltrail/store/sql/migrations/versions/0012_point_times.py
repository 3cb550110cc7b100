"""Wall-clock times in rollup buckets, so downsampled reads carry each point's time; an index
finding a weights link by its point, so linking a hash to N epochs is not O(N^2).

Raw chunks always kept times (a delta-encoded column); buckets written before this migration
keep NULL times (a downsampled read answers NaN for their points).

Revision ID: 0012_point_times
Revises: 0004_liveness
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_point_times"
down_revision = "0004_liveness"
branch_labels = None
depends_on = None

_PARTS = ("first", "last", "min", "max")


def upgrade() -> None:
    """Add ``<part>_time`` to metric_rollups (no table rewrite): first_time in unix ms, the
    others in ms after it (see rollups.RELATIVE_TIMES)."""
    for part in _PARTS:
        op.add_column("metric_rollups", sa.Column(f"{part}_time", sa.Double(), nullable=True))
    op.create_index(
        "ix_weights_links_point",
        "weights_links",
        ["experiment_id", "weights_hash", "iteration", "epoch"],
    )


def downgrade() -> None:
    """Drop the time columns and the index."""
    op.drop_index("ix_weights_links_point", table_name="weights_links")
    with op.batch_alter_table("metric_rollups") as batch:
        for part in _PARTS:
            batch.drop_column(f"{part}_time")
