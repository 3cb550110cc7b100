"""64-bit point counts: a series' ``count`` and its chunks' ``start`` (the ordinal of their
first point) were 32-bit, so a series logging for long enough (2^31 points: 25 days at 1 kHz)
could take no more points on PostgreSQL.

SQLite's INTEGER is 64-bit already: nothing changes there (a batch rewrite would copy every
chunk for nothing). On PostgreSQL each column becomes BIGINT, which rewrites
``metric_series`` and ``metric_chunks`` once, in the upgrade's transaction.

Revision ID: 0015_wide_counts
Revises: 0014_rollup_blocks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_wide_counts"
down_revision = "0014_rollup_blocks"
branch_labels = None
depends_on = None

_COLUMNS = (("metric_series", "count"), ("metric_chunks", "start"))


def upgrade() -> None:
    """On PostgreSQL, widen the columns to BIGINT."""
    _retype(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    """Narrow them back (refused by PostgreSQL when a value no longer fits)."""
    _retype(sa.BigInteger(), sa.Integer())


def _retype(old: sa.types.TypeEngine, new: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # INTEGER holds 64 bits: nothing to change
    for table, column in _COLUMNS:
        op.alter_column(table, column, type_=new, existing_type=old, existing_nullable=False)
