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
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("deleted_at")
