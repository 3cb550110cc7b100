"""Rollup block format 3 (``store/sql/rollup_blocks.py``): a value column may be stored as its
bits rotated right by 29, flagged by 0x80 in its width byte (a float32 widened then takes 4
bytes a value, not 8). No schema change: revision 0021's code takes such a width byte for a
column of 128+ bytes and fails every chart read of the series, so a database taken back to it
must hold no such block. Nothing changes on the way up (format 2 stays readable); the
downgrade rewrites every format-3 block as format 2.

The format is written out here and in migrations 0014 and 0018 (whose block decoding and
encoding this calls), not imported from ``store/sql/rollup_blocks.py``: a later change of the
live format must not change what this migration writes.

Revision ID: 0022_rollup_blocks_rotated
Revises: 0021_chunk_delta_formats
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0022_rollup_blocks_rotated"
down_revision = "0021_chunk_delta_formats"
branch_labels = None
depends_on = None

_V14 = importlib.import_module("mltrail.store.sql.migrations.versions.0014_rollup_blocks")
_V18 = importlib.import_module("mltrail.store.sql.migrations.versions.0018_rollup_blocks_16")
_ROTATED = 0x80  # in a width byte: the column holds its bits rotated right by _ROTATION
_ROTATION = np.uint64(29)
_BUCKETS = 16
_BLOCKS = sa.table(
    "metric_rollup_blocks",
    *(sa.column(c, sa.Integer()) for c in ("series_id", "level", "block")),
    sa.column("data", sa.LargeBinary()),
)
_SERIES_AT_ONCE = 200  # series whose blocks are read together


def upgrade() -> None:
    """Nothing to change: format-2 blocks stay readable."""


def downgrade() -> None:
    """Every format-3 block rewritten as format 2, a few series at a time."""
    rewrite_blocks(op.get_bind(), 3, as_format_2)


def rewrite_blocks(conn: sa.Connection, form: int, convert: Callable[[bytes], bytes]) -> None:
    """Every block of format ``form`` replaced by ``convert`` of it, a few series at a time
    (migration 0023's downgrade rewrites its format so too)."""
    b = _BLOCKS.c
    series = conn.execute(sa.select(b.series_id).distinct().order_by(b.series_id)).scalars().all()
    rewrite = (
        sa.update(_BLOCKS)
        .where(b.series_id == sa.bindparam("s"), b.level == sa.bindparam("l"),
               b.block == sa.bindparam("k"))
        .values(data=sa.bindparam("d"))
    )  # fmt: skip
    for at in range(0, len(series), _SERIES_AT_ONCE):
        part = series[at : at + _SERIES_AT_ONCE]
        found = conn.execute(
            sa.select(b.series_id, b.level, b.block, b.data).where(b.series_id.in_(part))
        ).all()
        changed = [
            {"s": s, "l": level, "k": block, "d": convert(bytes(data))}
            for s, level, block, data in found
            if data[0] == form
        ]
        if changed:
            conn.execute(rewrite, changed)


def as_format_2(data: bytes) -> bytes:
    """A format-3 block as format 2: its rotated value columns' bits turned back, every
    column's width taken again."""
    width = len(_V14.COLUMNS)
    widths = data[5 : 5 + width]
    plain = bytes([2, *data[1:5], *(w & ~_ROTATED for w in widths)]) + data[5 + width :]
    table = _V14.decode_block(plain, _BUCKETS)
    bits = table.view(np.uint64)
    for j, w in enumerate(widths):
        if w & _ROTATED:
            bits[j] = (bits[j] << _ROTATION) | (bits[j] >> (np.uint64(64) - _ROTATION))
    return _V18.encode_block(table)
