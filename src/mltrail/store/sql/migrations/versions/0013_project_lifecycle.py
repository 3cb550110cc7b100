"""Projects can be deleted and restored: ``projects.deleted_at`` (NULL while active).

Revision ID: 0013_project_lifecycle
Revises: 0007_offline_runs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_project_lifecycle"
down_revision = "0007_offline_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add projects.deleted_at (no table rewrite: a nullable column)."""
    op.add_column("projects", sa.Column("deleted_at", sa.Double(), nullable=True))


def downgrade() -> None:
    """Drop it."""
    # in place: a batch copy drops the table, and foreign keys then delete what it owns
    op.execute("ALTER TABLE projects DROP COLUMN deleted_at")
