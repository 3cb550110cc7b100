"""Going down the migrations to the first one keeps every project, experiment and series
row: the downgrades drop columns of tables others reference in place, since a batch copy (a new
table, the old one dropped) let SQLite's foreign keys delete everything those tables owned."""

from __future__ import annotations

import numpy as np
from sqlalchemy import text

from mltrail.core.types import MetricBatch
from mltrail.store.sql import SqlStore
from mltrail.store.sql.engine import Database, make_engine
from support.factories import chunk
from support.stores import migrate


def _counts(db_url: str) -> list[int]:
    db = Database(make_engine(db_url))
    with db.read() as conn:
        tables = ("projects", "experiments", "metric_series")
        found = [conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in tables]
    db.close()
    return found


def test_the_first_revision_still_holds_every_row_and_the_head_reads_them(db_url: str) -> None:
    store = SqlStore.open(db_url)
    p = store.create_project("kept").id
    for _ in range(2):
        store.create_experiment(p)
    values = np.arange(20) / 4
    store.append_points(p, 2, MetricBatch("c", 0, (chunk("loss", range(20), values),)))
    store.close()
    migrate(db_url, "0001_initial", down=True)
    assert _counts(db_url) == [1, 2, 1]
    store = SqlStore.open(db_url)  # upgraded to the head again
    try:
        assert store.list_experiments(p).total == 2
        np.testing.assert_array_equal(store.read_series(p, 2, "loss", "train").values, values)
    finally:
        store.close()
