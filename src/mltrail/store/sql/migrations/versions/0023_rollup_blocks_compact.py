"""Rollup block format 4 (``store/sql/rollup_blocks.py``): format 3's records under a header
of the fewest bytes (each base and start in the fewest whole bytes holding it signed, its size
in bits 4-6 of the column's width byte; the bucket count in one byte). No schema change:
revision 0022's code refuses a format-4 block (every chart read of its series fails), so a
database taken back to it must hold none. Nothing changes on the way up (formats 2 and 3 stay
readable); the downgrade rewrites every format-4 block as format 3 (a value column rotated)
or 2, the same records under the fixed header.

The formats are written out here, not imported from ``store/sql/rollup_blocks.py``: a later
change of the live format must not change what this migration writes (the rewrite itself is
migration 0022's).

Revision ID: 0023_rollup_blocks_compact
Revises: 0022_rollup_blocks_rotated
"""

from __future__ import annotations

import importlib
import struct

from alembic import op

revision = "0023_rollup_blocks_compact"
down_revision = "0022_rollup_blocks_rotated"
branch_labels = None
depends_on = None

_WIDTH = 17  # columns of a block
_COMPACT = 4
_ROTATED = 0x80  # in a width byte: the column holds its value bits rotated
_SIZE_BITS = 0x0F  # in a width byte: the bytes of the column's records
_SIZES = (0, 1, 2, 4, 8)  # format 4: by code, the bytes of a base or start (signed)
_LEAD = struct.Struct(f"<BB{_WIDTH}sB")  # format 4: format, buckets, widths, starts' codes
_FIXED = struct.Struct(f"<BI{_WIDTH}s{_WIDTH}q2q")  # formats 2 and 3
_V22 = importlib.import_module("mltrail.store.sql.migrations.versions.0022_rollup_blocks_rotated")


def upgrade() -> None:
    """Nothing to change: blocks of formats 2 and 3 stay readable."""


def downgrade() -> None:
    """Every format-4 block rewritten under the fixed header, a few series at a time."""
    _V22.rewrite_blocks(op.get_bind(), _COMPACT, as_fixed_header)


def as_fixed_header(data: bytes) -> bytes:
    """A format-4 block as format 3 (a value column rotated) or 2: its bases and starts
    read from their few bytes and written as 8-byte ones, its records as they are."""
    _, buckets, widths, codes = _LEAD.unpack_from(data)
    sizes = [_SIZES[w >> 4 & 7] for w in widths] + [_SIZES[codes & 0x0F], _SIZES[codes >> 4]]
    numbers, at = [], _LEAD.size
    for size in sizes:
        numbers.append(int.from_bytes(data[at : at + size], "little", signed=True))
        at += size
    plain = bytes(w & (_ROTATED | _SIZE_BITS) for w in widths)
    form = 3 if any(w & _ROTATED for w in plain) else 2
    return _FIXED.pack(form, buckets, plain, *numbers) + data[at:]
