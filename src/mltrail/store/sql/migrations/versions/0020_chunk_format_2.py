"""Chunk format 2 (values as float32 bits, ``core/chunk_codec.py``) came without a revision of
its own: versions before it read every chunk as format 1 (they never looked at its format
byte), so a format-2 chunk left in a database taken back to their revision would read as
tiny wrong values, silently. Nothing changes on the way up (format 2 is written from here on,
format 1 stays readable); the downgrade rewrites every format-2 chunk as format 1.

Both formats are written out here, not imported from ``core/chunk_codec.py``: a later change
of the live format must not change what this migration writes.

Revision ID: 0020_chunk_format_2
Revises: 0019_rollups_without_rowid
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0020_chunk_format_2"
down_revision = "0019_rollups_without_rowid"
branch_labels = None
depends_on = None

_HEADER = struct.Struct("<BqqI")  # format, first iteration, first time (ms), constant planes
_PLANES = 32  # four int64 columns, a plane a byte; the values' are planes 16-23
_VALUE_PLANES = slice(16, 24)
_CHUNKS = sa.table(
    "metric_chunks",
    sa.column("series_id", sa.Integer()),
    sa.column("start", sa.BigInteger()),
    sa.column("count", sa.Integer()),
    sa.column("data", sa.LargeBinary()),
)
_SERIES_AT_ONCE = 200  # series whose chunks are read together


def upgrade() -> None:
    """Nothing to change: format-1 chunks stay readable."""


def downgrade() -> None:
    """Every format-2 chunk rewritten as format 1, a few series at a time."""
    rewrite_chunks({2}, as_format_1)


def rewrite_chunks(formats: set[int], rewrite: Callable[[bytes, int], bytes]) -> None:
    """Every chunk of one of ``formats`` replaced by ``rewrite(data, count)``, a few series at
    a time (migration 0021's downgrade too)."""
    conn = op.get_bind()
    c = _CHUNKS.c
    series = conn.execute(sa.select(c.series_id).distinct().order_by(c.series_id)).scalars().all()
    statement = (
        sa.update(_CHUNKS)
        .where(c.series_id == sa.bindparam("s"), c.start == sa.bindparam("st"))
        .values(data=sa.bindparam("d"))
    )
    for at in range(0, len(series), _SERIES_AT_ONCE):
        part = series[at : at + _SERIES_AT_ONCE]
        found = conn.execute(
            sa.select(c.series_id, c.start, c.count, c.data).where(c.series_id.in_(part))
        ).all()
        changed = [
            {"s": s, "st": start, "d": rewrite(bytes(data), n)}
            for s, start, n, data in found
            if n and data[0] in formats
        ]
        if changed:
            conn.execute(statement, changed)


def unpack_planes(data: bytes, n: int) -> tuple[int, int, int, np.ndarray]:
    """A chunk of ``n`` points: its format, first iteration, first time (ms) and its 32 byte
    planes, ``(32, n)`` (migration 0021's downgrade too)."""
    fmt, first_iteration, first_millis, mask = _HEADER.unpack_from(data)
    constant = [bool(mask >> p & 1) for p in range(_PLANES)]
    k = sum(constant)
    fills = iter(data[_HEADER.size : _HEADER.size + k])
    rest = iter(np.frombuffer(zlib.decompress(data[_HEADER.size + k :]), np.uint8).reshape(-1, n))
    planes = np.empty((_PLANES, n), dtype=np.uint8)
    for p in range(_PLANES):
        planes[p] = next(fills) if constant[p] else next(rest)
    return fmt, first_iteration, first_millis, planes


def pack_planes(fmt: int, first_iteration: int, first_millis: int, planes: np.ndarray) -> bytes:
    """A chunk of ``planes`` (as :func:`unpack_planes` gives them) in format ``fmt``: constant
    planes in the header, the others deflated at level 1 (migration 0021's downgrade too)."""
    kept = planes.min(axis=1) == planes.max(axis=1)
    mask = sum(1 << p for p in range(_PLANES) if kept[p])
    head = _HEADER.pack(fmt, first_iteration, first_millis, mask)
    body = zlib.compress(np.ascontiguousarray(planes[~kept]).tobytes(), 1)
    return head + planes[kept, 0].tobytes() + body


def as_format_1(data: bytes, n: int) -> bytes:
    """A format-2 chunk of ``n`` points as format 1: its value planes hold float64 bits
    instead of float32 ones (zero-extended); the other planes are kept as they are."""
    _format, first_iteration, first_millis, planes = unpack_planes(data, n)
    bits = np.ascontiguousarray(planes[_VALUE_PLANES].T).view("<u8")[:, 0]
    wide = bits.astype("<u4").view("<f4").astype("<f8")
    planes[_VALUE_PLANES] = wide.view(np.uint8).reshape(n, 8).T
    return pack_planes(1, first_iteration, first_millis, planes)
