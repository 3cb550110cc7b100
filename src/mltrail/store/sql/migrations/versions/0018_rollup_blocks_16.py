"""Rollup blocks of 16 buckets instead of 128: a series under 8,192 points kept its whole first
level (64-point buckets) as rows, ~1.7 B a point of a 5,000-point series; blocks of 16 seal
every 1,024 points.

Each stored block of 128 buckets becomes the eight blocks of 16 it holds (``block`` numbers
times eight, plus 0-7), in the same format (the header says its buckets). The downgrade unpacks
every block into rows (as migration 0014's downgrade does), which the older version reads and
seals again as its appends complete blocks.

Both block sizes' format is written out here and in migration 0014, not imported from
``store/sql/rollup_blocks.py``: a later change of the live format must not change what this
migration writes.

Revision ID: 0018_rollup_blocks_16
Revises: 0017_ingest_ranges
"""

from __future__ import annotations

import importlib

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0018_rollup_blocks_16"
down_revision = "0017_ingest_ranges"
branch_labels = None
depends_on = None

_V14 = importlib.import_module("mltrail.store.sql.migrations.versions.0014_rollup_blocks")
OLD_BUCKETS, NEW_BUCKETS = 128, 16
_SIZES = (0, 1, 2, 4, 8)
_LAST_IT = _V14.COLUMNS.index("last_iteration")
_BLOCKS = sa.table(
    "metric_rollup_blocks",
    *(sa.column(c, sa.Integer()) for c in ("series_id", "level", "block")),
    sa.column("first_iteration", sa.BigInteger()),
    sa.column("last_iteration", sa.BigInteger()),
    sa.column("data", sa.LargeBinary()),
)
_SERIES_AT_ONCE = 200  # series whose blocks are split together (a few MB of blobs)


def upgrade() -> None:
    """Split every block of 128 buckets into eight of 16, a few series at a time."""
    conn = op.get_bind()
    b = _BLOCKS.c
    series = conn.execute(sa.select(b.series_id).distinct().order_by(b.series_id)).scalars().all()
    for at in range(0, len(series), _SERIES_AT_ONCE):
        part = series[at : at + _SERIES_AT_ONCE]
        found = conn.execute(
            sa.select(b.series_id, b.level, b.block, b.data).where(b.series_id.in_(part))
        ).all()
        pieces = [
            {"series_id": s, "level": level, **piece}
            for s, level, block, data in found
            for piece in split_block(block, bytes(data))
        ]
        conn.execute(sa.delete(_BLOCKS).where(b.series_id.in_(part)))
        if pieces:
            conn.execute(_BLOCKS.insert(), pieces)


def downgrade() -> None:
    """Every block of 16 buckets back into rows, then no block."""
    _V14.unpack_all(op.get_bind(), NEW_BUCKETS)


def split_block(block: int, data: bytes) -> list[dict[str, object]]:
    """The eight blocks of 16 buckets of the 128-bucket block number ``block``: their number,
    lowest and highest iteration, and data."""
    table = _V14.decode_block(data, OLD_BUCKETS)
    out = []
    for k in range(OLD_BUCKETS // NEW_BUCKETS):
        part = table[:, k * NEW_BUCKETS : (k + 1) * NEW_BUCKETS]
        out.append({
            "block": block * (OLD_BUCKETS // NEW_BUCKETS) + k,
            "first_iteration": int(part[_V14._FIRST_IT].min()),
            "last_iteration": int(part[_LAST_IT].max()),
            "data": encode_block(part),
        })  # fmt: skip
    return out


def encode_block(table: np.ndarray) -> bytes:
    """Inverse of migration 0014's ``decode_block`` for a (COLUMNS, buckets) int64 array
    (values as their bits), of any number of buckets."""
    t = table.copy()
    t[_V14._ITERATIONS] -= t[_V14._FIRST_IT]
    starts = t[[_V14._FIRST_IT, _V14._FIRST_TIME], 0].tolist()
    for j in (_V14._FIRST_IT, _V14._FIRST_TIME):
        t[j] = np.diff(t[j], prepend=t[j, :1])
    bases = t.min(axis=1)
    offsets = t.view(np.uint64) - bases.view(np.uint64)[:, None]  # wraps: always >= 0
    largest = offsets.max(axis=1).tolist()
    widths = [next(w for w in _SIZES if x < 256**w) if x < 2**56 else 8 for x in largest]
    fields = [(f"c{j}", f"<u{w}") for j, w in enumerate(widths) if w]
    records = np.empty(t.shape[1], dtype=fields)
    for name, _ in fields:
        records[name] = offsets[int(name[1:])]
    head = _V14._HEADER.pack(_V14._FORMAT, t.shape[1], bytes(widths), *bases.tolist(), *starts)
    return head + records.tobytes()
