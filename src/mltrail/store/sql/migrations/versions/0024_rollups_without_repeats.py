"""A rollup level whose one bucket repeats the finer level's is no longer stored: a series of
at most ``64 * 8 ** (k - 2)`` points keeps no row of level k > 1 (``rollups.stored_levels``).
Its one bucket held the same points as the finer level's one bucket, the same row under
another level (five rows for a series of under 64 points, a system metric's; ~0.05 B a point
of 10-point flushes). Reads take the finer level (``rollups.choose_level``); an append that
outgrows it starts the coarser level from the finer level's bucket.

The upgrade deletes those rows; the downgrade writes them back, each a copy of the finer
level's bucket 0 (revision 0023's code merges an append into them), finest level first so
each copy has its source.

The level sizes are written out here, not imported: a migration is a snapshot.

Revision ID: 0024_rollups_without_repeats
Revises: 0023_rollup_blocks_compact
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_rollups_without_repeats"
down_revision = "0023_rollup_blocks_compact"
branch_labels = None
depends_on = None

_LEVEL_SIZES = (64, 512, 4096, 32768, 262144)
_PARTS = ("first", "last", "min", "max")
_COLUMNS = ", ".join(
    ["n", *(f"{p}_{f}" for p in _PARTS for f in ("iteration", "epoch", "value", "time"))]
)
# the series whose one bucket of level :level - 1 holds every point
_SMALL = 'SELECT id FROM metric_series WHERE "count" <= :size'


def upgrade() -> None:
    conn = op.get_bind()
    for level in range(2, len(_LEVEL_SIZES) + 1):
        conn.execute(
            sa.text(f"DELETE FROM metric_rollups WHERE level = :level AND series_id IN ({_SMALL})"),
            {"level": level, "size": _LEVEL_SIZES[level - 2]},
        )


def downgrade() -> None:
    conn = op.get_bind()
    for level in range(2, len(_LEVEL_SIZES) + 1):
        conn.execute(
            sa.text(
                f"INSERT INTO metric_rollups (series_id, level, bucket, {_COLUMNS}) "
                f"SELECT series_id, :level, 0, {_COLUMNS} FROM metric_rollups "
                f"WHERE level = :finer AND bucket = 0 AND series_id IN ({_SMALL})"
            ),
            {"level": level, "finer": level - 1, "size": _LEVEL_SIZES[level - 2]},
        )
