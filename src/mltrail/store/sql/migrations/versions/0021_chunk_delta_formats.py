"""Chunk formats 3 and 4 (``core/chunk_codec.py``: formats 1 and 2 with the value column as
zigzagged differences of consecutive values' bits) came without a schema change: revision 0020's
code reads a chunk of format 3 or 4 as format 1 (it only looks for format 2), so a database
taken back to it must hold no such chunk, or its values would read as wrong numbers, silently.
Nothing changes on the way up; the downgrade rewrites every format-3 chunk as format 1 and
every format-4 chunk as format 2 (the differences summed again; the other planes kept).

The formats are written out here, not imported from ``core/chunk_codec.py``: a later change
of the live formats must not change what this migration writes.

Revision ID: 0021_chunk_delta_formats
Revises: 0020_chunk_format_2
"""

from __future__ import annotations

import importlib

import numpy as np

revision = "0021_chunk_delta_formats"
down_revision = "0020_chunk_format_2"
branch_labels = None
depends_on = None

# the chunk layout and the rewriting of chunks, as migration 0020 wrote them out
_0020 = importlib.import_module("mltrail.store.sql.migrations.versions.0020_chunk_format_2")
_VALUE_PLANES = slice(16, 24)  # four int64 columns, a plane a byte; the values' are 16-23
_UNDELTA = {3: 1, 4: 2}  # a delta format: the format its values are the differences of


def upgrade() -> None:
    """Nothing to change: formats 1 and 2 stay readable."""


def downgrade() -> None:
    """Every format-3 or format-4 chunk rewritten as format 1 or 2, a few series at a time."""
    _0020.rewrite_chunks(set(_UNDELTA), without_deltas)


def without_deltas(data: bytes, n: int) -> bytes:
    """A format-3 (format-4) chunk of ``n`` points as format 1 (2): its value planes hold
    the values' 64-bit (32-bit, zero-extended) bits instead of their zigzagged differences;
    the other planes are kept as they are."""
    fmt, first_iteration, first_millis, planes = _0020.unpack_planes(data, n)
    step = np.ascontiguousarray(planes[_VALUE_PLANES].T).view("<u8")[:, 0]
    step = (step >> np.uint64(1)) ^ (np.uint64(0) - (step & np.uint64(1)))
    bits = np.cumsum(step.view("<i8")).view("<u8")  # wraps at 64 bits
    if fmt == 4:
        bits &= np.uint64(0xFFFFFFFF)
    planes[_VALUE_PLANES] = bits.view(np.uint8).reshape(n, 8).T
    return _0020.pack_planes(_UNDELTA[fmt], first_iteration, first_millis, planes)
