"""What a purge leaves in the database and the blob store (nothing of the experiment), the
trash's retention, and migration 0009 filling the searchable copies of existing experiments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, text

from mltrail.core.errors import ConflictError
from mltrail.core.lifecycle import include
from mltrail.core.query import parse_query
from mltrail.core.types import Status
from mltrail.store.blobs import open_blobs
from mltrail.store.sql import SqlStore
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.migrate import MIGRATIONS_DIR
from mltrail.store.sql.tables import (
    experiments,
    metadata,
    metric_chunks,
    metric_rollup_tails,
    metric_series,
)
from store.test_lifecycle_contract import _fill


def _rows_of(sql: SqlStore, pk: int, series: list[int]) -> dict[str, int]:
    """Rows that still point at experiment ``pk`` (or its series), per table."""
    counts = {}
    with sql._db.read() as conn:
        for table in metadata.sorted_tables:
            if "experiment_id" in table.c:
                where = table.c.experiment_id == pk
            elif table in (metric_chunks, metric_rollup_tails):
                where = table.c.series_id.in_(series or [-1])
            else:
                continue
            counts[table.name] = conn.execute(
                select(func.count()).select_from(table).where(where)
            ).scalar_one()
    return counts


def _blob_files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.is_file() and len(p.name) == 64}


def test_purge_removes_every_row_and_unshared_blob(migrated_db_url: str, tmp_path: Path) -> None:
    sql = SqlStore.open(migrated_db_url, blobs=open_blobs(tmp_path / "blobs"))
    project = sql.create_project("purge").id
    for number in (1, 2):
        sql.create_experiment(project, hyperparameters={"lr": 0.1}, tags=["t"])
        _fill(sql, project, number, b"shared" * 50)
        sql.update_experiment(project, number, status=Status.DONE)
    with sql._db.read() as conn:
        pk = conn.execute(select(experiments.c.id).where(experiments.c.number == 1)).scalar_one()
        series = list(
            conn.execute(
                select(metric_series.c.id).where(metric_series.c.experiment_id == pk)
            ).scalars()
        )
    before = _rows_of(sql, pk, series)
    assert {name for name, n in before.items() if n == 0} <= {"jobs"}, before
    files = _blob_files(tmp_path / "blobs")
    assert len(files) == 3  # shared + own 1 + own 2
    sql.purge_experiment(project, 1)
    assert set(_rows_of(sql, pk, series).values()) == {0}
    assert len(_blob_files(tmp_path / "blobs")) == 2
    assert (
        sql.search_experiments(project, parse_query("params.lr > 0"), include=include("all")).total
        == 1
    )
    sql.close()


def test_the_trash_keeps_experiments_for_its_retention(
    migrated_db_url: str, tmp_path: Path
) -> None:
    now = [1_000_000.0]
    sql = SqlStore.open(migrated_db_url, clock=lambda: now[0], trash_days=1)
    project = sql.create_project("trash").id
    for _ in range(3):
        sql.create_experiment(project, status=Status.DONE)
    sql.delete_experiment(project, 1)
    now[0] += 3600
    assert sql.restore_experiment(project, 1).state == "active"
    sql.delete_experiment(project, 1)
    now[0] += 2 * 86400
    with pytest.raises(ConflictError, match="retention"):
        sql.restore_experiment(project, 1)
    sql.delete_experiment(project, 2)  # a delete purges what outlived the retention
    found = sql.search_experiments(project, include=include("all")).items
    assert [e.experiment_id for e in found] == [2, 3]
    sql.close()


def test_migration_fills_searchable_params_and_tags(db_url: str) -> None:
    db = Database(make_engine(db_url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0012_point_times")
        conn.execute(
            text(
                "INSERT INTO projects (display_name, description, created_at, next_experiment) VALUES ('old', '', 0, 2)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO experiments (project_id, number, display_name, description, status, "
                "created_at, updated_at, hyperparameters, environment, source, tags, "
                "stop_requested, log_count) VALUES (1, 1, 'old', '', 'done', 0, 0, :hp, '{}', "
                "'{}', :tags, false, 0)"
            ),
            {"hp": json.dumps(_OLD_HYPERPARAMETERS), "tags": '["x"]'},
        )
    db.close()
    sql = SqlStore.open(db_url)
    query = parse_query("params.lr = 0.5 and params.opt = 'adam' and tags = 'x'")
    assert [e.notes for e in sql.search_experiments(1, query).items] == [""]
    with sql._db.read() as conn:
        found = conn.execute(
            text(
                "SELECT key, num_value, text_value, bool_value FROM experiment_params ORDER BY key"
            )
        ).all()
    sql.close()
    # the rows of migration 0009's own rule (not store/sql/query.py's, which may change later):
    # scalars only; NaN, mappings, lists and text no database holds get none
    assert [tuple(row) for row in found] == [
        ("big", math.inf, None, None),
        ("epochs", 3.0, None, None),
        ("lr", 0.5, None, None),
        ("on", None, None, True),
        ("opt", None, "adam", None),
    ]


_OLD_HYPERPARAMETERS = {
    "lr": 0.5,
    "opt": "adam",
    "nested": {"a": 1},
    "list": [1, 2],
    "on": True,
    "epochs": 3,
    "big": math.inf,
    "nan": math.nan,
    "nul": "a\x00b",
    "none": None,
}
