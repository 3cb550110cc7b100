"""On SQLite, ``metric_rollups`` becomes a WITHOUT ROWID table: its rows are stored in their
primary key's order (series, level, bucket) instead of a rowid's, with no separate index of
that key beside them. The index repeated every key (~0.12 B a point of a series flushed every
10 iterations); and rows of many series interleaved by arrival left pages part empty as the
buckets of each block were deleted when sealed, where a series' level now deletes a run of
neighbouring rows.

The table is copied once (CREATE ... WITHOUT ROWID as it stands, INSERT ... SELECT, DROP,
RENAME); the downgrade copies it back into a rowid table. PostgreSQL has no rowid: nothing
changes there.

Revision ID: 0019_rollups_without_rowid
Revises: 0018_rollup_blocks_16
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0019_rollups_without_rowid"
down_revision = "0018_rollup_blocks_16"
branch_labels = None
depends_on = None

_NAME = re.compile(r'^CREATE TABLE\s+"?metric_rollups"?\s*\(', re.IGNORECASE)
_WITHOUT = re.compile(r"\)\s*WITHOUT\s+ROWID\s*$", re.IGNORECASE)


def upgrade() -> None:
    _copy(rowid=False)


def downgrade() -> None:
    _copy(rowid=True)


def _copy(rowid: bool) -> None:
    """On SQLite, ``metric_rollups`` copied into a table of the same columns and key, with
    (``rowid``) or without a rowid, which takes its name."""
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    found = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'metric_rollups'"
    sql = str(conn.execute(sa.text(found)).scalar()).strip()
    body = _WITHOUT.sub(")", _NAME.sub('CREATE TABLE "metric_rollups_copy" (', sql, count=1))
    if not body.startswith('CREATE TABLE "metric_rollups_copy"'):
        raise RuntimeError(f"metric_rollups is not a table this migration knows: {sql[:200]}")
    conn.execute(sa.text(body if rowid else body + " WITHOUT ROWID"))
    conn.execute(sa.text('INSERT INTO "metric_rollups_copy" SELECT * FROM "metric_rollups"'))
    conn.execute(sa.text('DROP TABLE "metric_rollups"'))
    conn.execute(sa.text('ALTER TABLE "metric_rollups_copy" RENAME TO "metric_rollups"'))
