"""Liveness and exact log text: experiments' last heartbeat, escaped log messages.

``experiments.last_heartbeat`` is when the run last said it was alive (``NULL``: never, so it
is never judged crashed, see ``core/liveness.py``). ``log_lines.escaped`` marks a message
stored escaped because it holds NUL or invalid UTF-8 (see ``core/text.py``).

Revision ID: 0004_liveness
Revises: 0006_artifacts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_liveness"
down_revision = "0006_artifacts"  # main's head when this was rebased; the lead re-chains at merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add experiments.last_heartbeat and log_lines.escaped."""
    op.add_column("experiments", sa.Column("last_heartbeat", sa.Double(), nullable=True))
    op.add_column(
        "log_lines",
        sa.Column("escaped", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    """Drop both columns."""
    with op.batch_alter_table("log_lines") as batch:
        batch.drop_column("escaped")
    # in place: a batch copy drops the table, and foreign keys then delete what it owns
    op.execute("ALTER TABLE experiments DROP COLUMN last_heartbeat")
