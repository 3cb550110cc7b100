"""Packed blocks of complete rollup buckets (``metric_rollup_blocks``), so a chart read fetches
a few blobs instead of one row per bucket.

Buckets already stored stay rows and read as before: a read joins a level's blocks and rows,
and an append seals the complete blocks of the levels it fills (store/sql/rollup_sealing.py).

The downgrade decodes blocks in the format of this revision, written out here
(:func:`unpack_all`), not imported from ``store/sql/rollup_blocks.py``: a later change of the
live format must come with a migration of its own, and must not change what this one reads.

Revision ID: 0014_rollup_blocks
Revises: 0013_project_lifecycle
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
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
    unpack_all(op.get_bind())
    op.drop_table("metric_rollup_blocks")


# --- the block format of this revision ---------------------------------------------------------
BLOCK_BUCKETS = 128
_FORMAT = 2
_PARTS = ("first", "last", "min", "max")
_FIELDS: dict[str, sa.types.TypeEngine[Any]] = {
    "iteration": sa.BigInteger(),
    "epoch": sa.Integer(),
    "value": sa.Double(),
    "time": sa.Double(),
}
COLUMNS = ("n", *(f"{p}_{f}" for p in _PARTS for f in _FIELDS))
_WIDTH = len(COLUMNS)
# format, buckets, each column's width in bytes, its base, the two delta columns' first values
_HEADER = struct.Struct(f"<BI{_WIDTH}s{_WIDTH}q2q")
_VALUES = [COLUMNS.index(f"{p}_value") for p in _PARTS]
_ITERATIONS = [COLUMNS.index(f"{p}_iteration") for p in _PARTS[1:]]  # after first_iteration
_FIRST_IT, _FIRST_TIME = COLUMNS.index("first_iteration"), COLUMNS.index("first_time")
_ROWS = sa.table(
    "metric_rollups",
    *(sa.column(c, sa.Integer()) for c in ("series_id", "level", "bucket", "n")),
    *(sa.column(f"{p}_{f}", kind) for p in _PARTS for f, kind in _FIELDS.items()),
)
_BLOCKS = sa.table(
    "metric_rollup_blocks",
    *(sa.column(c, sa.Integer()) for c in ("series_id", "level", "block")),
    sa.column("data", sa.LargeBinary()),
)


def decode_block(blob: bytes, buckets: int = BLOCK_BUCKETS) -> np.ndarray:
    """A block's (COLUMNS, buckets) int64 array, values as their bits: each column stored as
    offsets from its base in 0-8 bytes a bucket; the first iteration and first time as deltas
    along the block, the other iterations after the bucket's first. ``buckets``: the blocks'
    size (migration 0018 made them 16 in the same format)."""
    form, size, widths, *numbers = _HEADER.unpack_from(blob)
    if form != _FORMAT or size != buckets:
        raise ValueError(f"a rollup block of format {form} and {size} buckets")
    bases = np.array(numbers[:_WIDTH], dtype=np.int64).view(np.uint64)
    fields = [(f"c{j}", f"<u{w}") for j, w in enumerate(widths) if w]
    records = np.frombuffer(blob, dtype=fields, count=size, offset=_HEADER.size)
    table = np.empty((_WIDTH, size), dtype=np.int64)
    unsigned = table.view(np.uint64)
    for j, w in enumerate(widths):
        offsets = records[f"c{j}"] if w else np.zeros(size, dtype=np.uint8)
        np.add(offsets, bases[j], out=unsigned[j], casting="unsafe")  # wraps, as encoded
    for j, start in zip((_FIRST_IT, _FIRST_TIME), numbers[_WIDTH:], strict=True):
        np.cumsum(table[j], out=table[j])
        table[j] += start
    table[_ITERATIONS] += table[_FIRST_IT]
    return table


def bucket_rows(
    series_id: int, level: int, block: int, data: bytes, buckets: int = BLOCK_BUCKETS
) -> list[dict[str, Any]]:
    """The ``metric_rollups`` rows of one block (a NaN value is NULL, as stored before)."""
    ints = decode_block(data, buckets)
    values = ints[_VALUES].view("<f8")
    rows = []
    for k in range(ints.shape[1]):
        row = dict(zip(COLUMNS, ints[:, k].tolist(), strict=True))
        for i, value in zip(_VALUES, values[:, k].tolist(), strict=True):
            row[COLUMNS[i]] = None if value != value else value
        bucket = block * buckets + k
        rows.append({"series_id": series_id, "level": level, "bucket": bucket, **row})
    return rows


def unpack_all(conn: sa.Connection, buckets: int = BLOCK_BUCKETS) -> None:
    """Every block (of ``buckets`` buckets) back into rows, then no block."""
    b = _BLOCKS.c
    for series_id, level, block, data in conn.execute(
        sa.select(b.series_id, b.level, b.block, b.data)
    ).all():
        conn.execute(_ROWS.insert(), bucket_rows(series_id, level, block, bytes(data), buckets))
    conn.execute(sa.delete(_BLOCKS))
