"""Experiment lifecycle and search: notes, state (active, archived, deleted) with the time it
went to the trash, searchable copies of hyperparameters and tags, and the indexes that keep a
page of a project's experiments as cheap at 100,000 experiments as at 1,000.

The searchable rows of a hyperparameter are written out here as they were at this revision
(:func:`param_rows`), not imported from ``store/sql/query.py``: a later change of the live
rule must not change what this migration writes.

Revision ID: 0009_lifecycle_search
Revises: 0012_point_times
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009_lifecycle_search"
down_revision = "0012_point_times"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and tables, then fill the searchable copies from existing experiments."""
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("notes", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="active")
        )
        batch.add_column(sa.Column("deleted_at", sa.Double(), nullable=True))
    op.create_index(
        "ix_experiments_project_state", "experiments", ["project_id", "state", "number"]
    )
    params = op.create_table(
        "experiment_params",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("num_value", sa.Double(), nullable=True),
        sa.Column("text_value", sa.Text(), nullable=True),
        sa.Column("bool_value", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "key"),
    )
    tags = op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=250), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "tag"),
    )
    op.create_index("ix_experiment_tags_tag", "experiment_tags", ["tag"])
    # ordered by a metric, a page walks this index and stops (covering: no row lookups)
    op.create_index(
        "ix_metric_series_key_value",
        "metric_series",
        ["key", "phase", "last_value", "experiment_id"],
    )
    _fill(params, tags)


def _fill(params: sa.Table, tags: sa.Table) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, hyperparameters, tags FROM experiments"))
    for pk, hyperparameters, tag_text in rows.all():
        found = json.loads(hyperparameters or "{}")
        values = param_rows(pk, found) if isinstance(found, dict) else []
        if values:
            conn.execute(params.insert(), values)
        names = sorted({str(t) for t in json.loads(tag_text or "[]")})
        if names:
            conn.execute(tags.insert(), [{"experiment_id": pk, "tag": t} for t in names])


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # text no database holds: NUL, a lone surrogate


def param_rows(experiment_pk: int, hyperparameters: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``experiment_params`` rows of an experiment's scalar top-level hyperparameters, at
    this revision: NaN, mappings, lists and text no database holds get no row; a number of
    1e308 or more (in magnitude) is its infinity."""
    rows = []
    for key, value in hyperparameters.items():
        if _UNSTORABLE.search(str(key)) or (isinstance(value, str) and _UNSTORABLE.search(value)):
            continue
        row = {"experiment_id": experiment_pk, "key": str(key)}
        if isinstance(value, bool):
            rows.append({**row, "num_value": None, "text_value": None, "bool_value": value})
        elif isinstance(value, (int, float)) and not math.isnan(value):
            number = float(value) if abs(value) < 1e308 else math.copysign(math.inf, value)
            rows.append({**row, "num_value": number, "text_value": None, "bool_value": None})
        elif isinstance(value, str):
            rows.append({**row, "num_value": None, "text_value": value, "bool_value": None})
    return rows


def downgrade() -> None:
    """Drop the searchable copies and the lifecycle columns."""
    op.drop_index("ix_metric_series_key_value", table_name="metric_series")
    op.drop_index("ix_experiment_tags_tag", table_name="experiment_tags")
    op.drop_table("experiment_tags")
    op.drop_table("experiment_params")
    op.drop_index("ix_experiments_project_state", table_name="experiments")
    # in place: a batch copy drops the table, and foreign keys then delete what it owns
    for column in ("deleted_at", "state", "notes"):
        op.execute(f"ALTER TABLE experiments DROP COLUMN {column}")
