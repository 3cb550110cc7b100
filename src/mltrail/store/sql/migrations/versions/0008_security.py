"""Scoped job tokens, consented membership, agents' owners and opted-in projects.

``jobs.user_id`` is who queued the job: its token acts for that user. ``job_tokens`` keeps the
sha256 of each job's token with the attempt it was minted for; it is valid only while that
attempt runs under a live lease. ``project_invitations`` holds memberships offered and not yet
accepted. ``agents.projects`` lists the projects an agent's owner started it for.

Revision ID: 0008_security
Revises: 0009_lifecycle_search
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_security"
down_revision = "0009_lifecycle_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and the two tables."""
    op.add_column("jobs", sa.Column("user_id", sa.Integer(), nullable=True))
    op.add_column("agents", sa.Column("projects", sa.Text(), nullable=True))
    op.create_table(
        "job_tokens",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_index("ix_job_tokens_job_id", "job_tokens", ["job_id"])
    op.create_table(
        "project_invitations",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("invited_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "user_id"),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("project_invitations")
    op.drop_index("ix_job_tokens_job_id", table_name="job_tokens")
    op.drop_table("job_tokens")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("projects")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("user_id")
