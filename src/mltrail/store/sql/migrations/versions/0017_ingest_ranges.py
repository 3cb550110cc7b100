"""Ingest receipts as runs of seqs: ``ingest_batches`` (a row per batch stored: experiment,
kind, client_id, seq, created_at, and a unique index repeating all but the time) becomes
``ingest_ranges`` (a row per run of consecutive seqs of a client: ``[low, high]``). With
10-point flushes the rows a batch took ~0.7 B a point, a tenth of what the points took.

The upgrade groups each client's stored seqs into their runs (gaps and islands: a seq minus
its rank is the same along a run), in SQL; the downgrade lists every seq of every run again,
a row each (their time is the downgrade's: the times were never read).

Revision ID: 0017_ingest_ranges
Revises: 0016_log_blocks
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0017_ingest_ranges"
down_revision = "0016_log_blocks"
branch_labels = None
depends_on = None

_KEY = ("experiment_id", "kind", "client_id")
_BATCHES = sa.table("ingest_batches", *(sa.column(c) for c in (*_KEY, "seq", "created_at")))
_RANGES = sa.table("ingest_ranges", *(sa.column(c) for c in (*_KEY, "low", "high")))


def _key_columns(primary_key: bool) -> list[sa.Column]:
    """experiment_id, kind and client_id: the runs' key, or the receipts' non-null columns."""
    fk = sa.ForeignKey("experiments.id", ondelete="CASCADE")
    return [sa.Column("experiment_id", sa.Integer(), fk, primary_key=primary_key, nullable=False),
            sa.Column("kind", sa.String(16), primary_key=primary_key, nullable=False),
            sa.Column("client_id", sa.String(200), primary_key=primary_key, nullable=False)]  # fmt: skip


def upgrade() -> None:
    """Create ``ingest_ranges``, fill it with the runs of the receipts, drop the receipts."""
    op.create_table(
        "ingest_ranges",
        *_key_columns(primary_key=True),
        sa.Column("low", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("high", sa.Integer(), nullable=False),
        sa.UniqueConstraint(*_KEY, "high", name="uq_ingest_ranges_high"),
    )
    b = _BATCHES.c
    rank = sa.func.row_number().over(partition_by=[b[c] for c in _KEY], order_by=b.seq)
    ranked = sa.select(*(b[c] for c in _KEY), b.seq, (b.seq - rank).label("run")).subquery()
    r = ranked.c
    runs = sa.select(*(r[c] for c in _KEY), sa.func.min(r.seq), sa.func.max(r.seq)).group_by(
        *(r[c] for c in _KEY), r.run
    )
    op.get_bind().execute(_RANGES.insert().from_select([*_KEY, "low", "high"], runs))
    op.drop_table("ingest_batches")


def downgrade() -> None:
    """Create ``ingest_batches`` again, a row per seq of each run, drop the runs."""
    op.create_table(
        "ingest_batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        *_key_columns(primary_key=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.UniqueConstraint(*_KEY, "seq", name="uq_ingest_batches"),
    )
    conn = op.get_bind()
    now = time.time()
    rows = conn.execute(sa.select(*(_RANGES.c[k] for k in (*_KEY, "low", "high")))).all()
    batch: list[dict[str, object]] = []
    for *key, low, high in rows:
        head = dict(zip(_KEY, key, strict=True))
        batch += [{**head, "seq": seq, "created_at": now} for seq in range(low, high + 1)]
        if len(batch) >= 10_000:
            conn.execute(_BATCHES.insert(), batch)
            batch = []
    if batch:
        conn.execute(_BATCHES.insert(), batch)
    op.drop_table("ingest_ranges")
