"""Log lines in blocks: ``log_lines`` (one row per line) becomes ``log_blocks`` (up to 4,096
consecutive lines of an experiment per row, their columns in one JSON document; see
``store/sql/log_blocks.py``). Reading a long run's log took a row per line from the driver,
the floor of ``experiments logs``.

Every line is copied, an experiment at a time and a block at a time, with its seq, time,
stream, level, message and escaped flag; the downgrade copies them back, a row per line.

The block's format is written out here as it was at this revision, not imported from
``log_blocks.py``: a later change of the live module must not change what this migration
writes (a database upgraded from before it would get the new format under the old revision).

Revision ID: 0016_log_blocks
Revises: 0015_wide_counts
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0016_log_blocks"
down_revision = "0015_wide_counts"
branch_labels = None
depends_on = None

_LINES = sa.table(
    "log_lines",
    *(sa.column(c) for c in ("experiment_id", "seq", "time", "stream", "level", "message")),
    sa.column("escaped", sa.Boolean()),
)
_BLOCKS = sa.table(
    "log_blocks",
    *(sa.column(c) for c in ("experiment_id", "first_seq", "count")),
    sa.column("data", sa.LargeBinary()),
)
BLOCK_LINES = 4096
BLOCK_CHARS = 1 << 22  # characters of messages past a block's first line (1 GB value limits)


def encode_block(
    times: Sequence[float],
    streams: Sequence[str],
    levels: Sequence[str],
    messages: Sequence[str],
    escaped: Sequence[bool],
) -> bytes:
    """A block's ``data`` at this revision: the lines' columns in one JSON document,
    ``escaped`` listing the indices of the lines whose message is stored escaped."""
    return orjson.dumps(
        {
            "time": list(times),
            "stream": list(streams),
            "level": list(levels),
            "message": list(messages),
            "escaped": [i for i, flag in enumerate(escaped) if flag],
        }
    )


def decode_block(data: bytes | memoryview) -> dict[str, Any]:
    """The columns of :func:`encode_block`."""
    block: dict[str, Any] = orjson.loads(data)
    return block


def upgrade() -> None:
    """Create ``log_blocks``, copy every line into it, drop ``log_lines``."""
    op.create_table(
        "log_blocks",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "first_seq"),
    )
    conn = op.get_bind()
    for pk in conn.execute(sa.select(_LINES.c.experiment_id).distinct()).scalars().all():
        _copy_lines(conn, pk)
    op.drop_table("log_lines")


def _copy_lines(conn: sa.Connection, pk: int) -> None:
    """The experiment's lines as blocks of consecutive seqs (a gap, which the store never
    leaves, would start a new block), past a block's first line at most ``BLOCK_CHARS``
    characters of messages."""
    t = _LINES.c
    after = 0
    while True:
        query = (
            sa.select(t.seq, t.time, t.stream, t.level, t.message, t.escaped)
            .where(t.experiment_id == pk, t.seq > after)
            .order_by(t.seq)
            .limit(BLOCK_LINES)
        )
        rows = conn.execute(query).all()
        if not rows:
            return
        start, chars = 0, len(rows[0].message)
        for i in range(1, len(rows) + 1):
            size = len(rows[i].message) if i < len(rows) else 0
            if i == len(rows) or rows[i].seq != rows[i - 1].seq + 1 or chars + size > BLOCK_CHARS:
                part = rows[start:i]
                data = encode_block(*([r[c] for r in part] for c in range(1, 6)))
                row = {"experiment_id": pk, "first_seq": part[0].seq, "count": len(part)}
                conn.execute(sa.insert(_BLOCKS).values(**row, data=data))
                start, chars = i, 0
            chars += size
        after = rows[-1].seq


def downgrade() -> None:
    """Create ``log_lines`` again, copy every line back into it, drop ``log_blocks``."""
    op.create_table(
        "log_lines",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("escaped", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "seq"),
    )
    conn = op.get_bind()
    b = _BLOCKS.c
    for pk, first in conn.execute(sa.select(b.experiment_id, b.first_seq)).all():
        where = (b.experiment_id == pk) & (b.first_seq == first)
        block = decode_block(conn.execute(sa.select(b.data).where(where)).scalar_one())
        escaped = set(block["escaped"])
        columns = (block["time"], block["stream"], block["level"], block["message"])
        rows = [
            {"experiment_id": pk, "seq": first + i, "time": time, "stream": stream,
             "level": level, "message": message, "escaped": i in escaped}
            for i, (time, stream, level, message) in enumerate(zip(*columns, strict=True))
        ]  # fmt: skip
        conn.execute(sa.insert(_LINES), rows)
    op.drop_table("log_blocks")
