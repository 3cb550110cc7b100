"""Migration 0019: on SQLite ``metric_rollups`` is a WITHOUT ROWID table, its rows kept as they
were (and read alike); the downgrade gives the rowid table back with the same rows. (From
migration 0025 on the rows are packed in each series' tails: its downgrade writes them back.)"""

from __future__ import annotations

import sqlite3

import numpy as np

from mltrail.core.types import MetricBatch
from mltrail.store.sql import SqlStore
from support.factories import chunk
from support.stores import migrate


def _table(path: str) -> tuple[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'metric_rollups'").fetchone()
        rows = conn.execute("SELECT * FROM metric_rollups ORDER BY series_id, level, bucket")
        return sql[0], rows.fetchall()


def _reads(store: SqlStore) -> list[np.ndarray]:
    out = []
    for max_points in (3, 400, 2000):
        s = store.read_series(1, 1, "loss", "train", max_points=max_points, times=True)
        out += [s.iterations, s.values, s.times]
    return out


def test_rollup_rows_survive_the_change_of_table_both_ways(tmp_path) -> None:
    path = str(tmp_path / "rollups.db")
    url = f"sqlite:///{path}"
    migrate(url, "0018_rollup_blocks_16", down=False)
    rng = np.random.default_rng(19)
    store = SqlStore.open(url)
    try:
        p = store.create_project("rows").id
        store.create_experiment(p)
        for seq, start in enumerate(range(0, 30_000, 777)):
            n = min(777, 30_000 - start)
            part = chunk("loss", np.arange(start, start + n), rng.normal(size=n))
            store.append_points(p, 1, MetricBatch("c", seq, (part,)))
        want = _reads(store)
    finally:
        store.close()
    migrate(url, "0024_rollups_without_repeats", down=True)  # the tails as rows again
    sql, rows = _table(path)
    assert "WITHOUT ROWID" in sql.upper() and len(rows) > 20  # the head made it so
    migrate(url, "0018_rollup_blocks_16", down=True)
    old_sql, old_rows = _table(path)
    assert "WITHOUT ROWID" not in old_sql.upper()
    # and migration 0024's downgrade wrote back level 5's bucket, a copy of level 4's one
    assert [row for row in old_rows if row[1] < 5] == rows
    assert [row[3:] for row in old_rows if row[1] == 5] == [row[3:] for row in rows if row[1] == 4]
    migrate(url, "0024_rollups_without_repeats", down=False)
    new_sql, new_rows = _table(path)
    assert "WITHOUT ROWID" in new_sql.upper() and new_rows == rows
    store = SqlStore.open(url)
    try:
        for got, expected in zip(_reads(store), want, strict=True):
            np.testing.assert_array_equal(got, expected)
        more = chunk("loss", np.arange(30_000, 31_000), rng.normal(size=1000))
        assert store.append_points(1, 1, MetricBatch("c", 100, (more,))) == 1000
        assert store.read_series(1, 1, "loss", "train", max_points=2000).total == 31_000
    finally:
        store.close()
