"""Projects count their purged experiments, so an unfiltered list counts its page's total
without visiting every experiment of the project.

A project numbers its experiments from ``next_experiment`` and never gives a number twice, so
its experiment rows are ``next_experiment - 1 - purged_experiments``; the list's total then
only counts the rows in the states it leaves out (archived and trashed ones, usually few),
through the ``(project_id, state, number)`` index. The upgrade fills the column from the rows
each project holds.

Revision ID: 0026_purged_experiments
Revises: 0025_rollup_tails
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026_purged_experiments"
down_revision = "0025_rollup_tails"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add projects.purged_experiments, filled from the rows each project holds."""
    op.add_column(
        "projects",
        sa.Column("purged_experiments", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE projects SET purged_experiments = next_experiment - 1 - "
        "(SELECT COUNT(*) FROM experiments WHERE experiments.project_id = projects.id)"
    )


def downgrade() -> None:
    """Drop the column in place (SQLite 3.35+ and PostgreSQL): a batch copy of ``projects``
    would drop the table, and with foreign keys on that deletes every experiment."""
    op.execute("ALTER TABLE projects DROP COLUMN purged_experiments")
