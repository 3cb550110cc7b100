"""Migration 0015: a series keeps taking points past 2^31 of them (its count and its chunks'
first ordinals are 64-bit), and the migration goes down and up again keeping every point."""

from __future__ import annotations

import numpy as np
from sqlalchemy import text, update

from mltrail.core.types import MetricBatch
from mltrail.store.sql import SqlStore
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.tables import metric_chunks, metric_series
from support.factories import chunk
from support.stores import migrate

_LIFE = 2**31 + 1000  # points a long-lived series logged before this test's


def test_a_series_takes_points_past_two_to_the_31(migrated_db_url: str) -> None:
    store = SqlStore.open(migrated_db_url)
    try:
        p = store.create_project("long")
        store.create_experiment(p.id)
        store.append_points(p.id, 1, MetricBatch("c", 0, (chunk("loss", range(10), range(10)),)))
        with store._db.write() as conn:  # as if the series had logged 2^31 points before
            conn.execute(update(metric_series).values(count=metric_series.c.count + _LIFE))
            conn.execute(update(metric_chunks).values(start=metric_chunks.c.start + _LIFE))
        more = chunk("loss", range(10, 30), np.arange(10, 30) / 2)
        store.append_points(p.id, 1, MetricBatch("c", 1, (more,)))
        read = store.read_series(p.id, 1, "loss", "train")
        np.testing.assert_array_equal(read.iterations, np.arange(30))
        np.testing.assert_array_equal(read.values, np.r_[np.arange(10), np.arange(10, 30) / 2])
        assert read.total == _LIFE + 30
        with store._db.read() as conn:
            starts = conn.execute(text("SELECT start FROM metric_chunks ORDER BY start")).scalars()
            assert list(starts) == [_LIFE, _LIFE + 10]
    finally:
        store.close()


def test_the_migration_goes_down_and_up_keeping_every_point(db_url: str) -> None:
    store = SqlStore.open(db_url)
    p = store.create_project("down")
    store.create_experiment(p.id)
    values = np.random.default_rng(3).normal(size=5000)
    store.append_points(p.id, 1, MetricBatch("c", 0, (chunk("loss", range(5000), values),)))
    store.close()
    migrate(db_url, "0014_rollup_blocks", down=True)
    if not db_url.startswith("sqlite"):  # narrowed back: 32-bit again
        db = Database(make_engine(db_url))
        with db.read() as conn:
            kind = conn.execute(
                text(
                    "SELECT data_type FROM information_schema.columns "
                    "WHERE table_name = 'metric_chunks' AND column_name = 'start'"
                )
            )
            assert kind.scalar_one() == "integer"
        db.close()
    store = SqlStore.open(db_url)  # upgraded to the head again
    try:
        read = store.read_series(p.id, 1, "loss", "train")
        np.testing.assert_array_equal(read.values, values)
        store.append_points(p.id, 1, MetricBatch("c", 1, (chunk("loss", [5000], [1.5]),)))
        assert store.read_series(p.id, 1, "loss", "train").total == 5001
        if not db_url.startswith("sqlite"):
            with store._db.read() as conn:
                kinds = conn.execute(text(
                    "SELECT data_type FROM information_schema.columns WHERE "
                    "(table_name, column_name) IN (('metric_chunks', 'start'), "
                    "('metric_series', 'count'))"
                )).scalars()  # fmt: skip
                assert list(kinds) == ["bigint", "bigint"]
    finally:
        store.close()
