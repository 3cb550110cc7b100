"""A lone point's append writes its series' rollup tails in plain Python
(rollup_tails.write_lone) when it completes no bucket: the blob it writes is byte for byte
the one the general path (rollup_tails.write) writes, after every append, and the series
reads the same."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sqlalchemy as sa

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore, rollup_tails
from mltrail.store.sql.tables import metric_rollup_tails, metric_series

_ODD = [math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e-45, 3.4e38, -2.5]


def _point(i: int) -> SeriesChunk:
    value = _ODD[i % len(_ODD)] if i % 3 else 0.25 * i - 40
    it = np.array([i * 7 + 2**53 - 500], np.int64)  # past a double's whole numbers
    return SeriesChunk("loss", "train", it, np.array([i // 50], np.int64), np.array([value]),
                       np.array([1.7e9 + i * 0.0137]))  # fmt: skip


def _blobs(engine: sa.Engine) -> list[bytes]:
    join = metric_rollup_tails.join(
        metric_series, metric_series.c.id == metric_rollup_tails.c.series_id
    )
    query = sa.select(metric_rollup_tails.c.data).select_from(join)
    with engine.connect() as conn:
        found = conn.execute(query.order_by(metric_series.c.experiment_id)).scalars().all()
    return [bytes(b) for b in found]


def test_lone_points_write_the_tails_the_general_path_writes(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqlStore.open(migrated_db_url)
    engine = sa.create_engine(migrated_db_url)
    lone = rollup_tails.write_lone
    taken = []

    def counted(*args: object) -> bool:
        taken.append(lone(*args))  # type: ignore[arg-type]
        return taken[-1]

    try:
        p = store.create_project("lone").id
        store.create_experiment(p)
        store.create_experiment(p)
        for i in range(700):
            monkeypatch.setattr(rollup_tails, "write_lone", counted)
            store.append_points(p, 1, MetricBatch(None, 0, (_point(i),)))
            monkeypatch.setattr(rollup_tails, "write_lone", lambda *args: False)
            store.append_points(p, 2, MetricBatch(None, 0, (_point(i),)))
            if i < 80 or i % 37 == 0:
                first, second = _blobs(engine)
                assert first == second, i
        assert sum(taken) > 600 and not all(taken)
        for max_points in (None, 5, 100):
            a, b = (store.read_series(p, e, "loss", "train", max_points=max_points, times=True)
                    for e in (1, 2))  # fmt: skip
            np.testing.assert_array_equal(a.iterations, b.iterations)
            np.testing.assert_array_equal(a.values.view(np.int64), b.values.view(np.int64))
            np.testing.assert_array_equal(a.times, b.times)
    finally:
        engine.dispose()
        store.close()


def test_the_tails_an_append_replaced_are_not_remembered(migrated_db_url: str) -> None:
    """One remembered tail per series written, whatever the number of appends: each one a
    replaced blob no append looks for again (1,000 of them held 5 MiB of a server's heap after
    an MLflow client's 50,000 points)."""
    store = SqlStore.open(migrated_db_url)
    try:
        p = store.create_project("memo").id
        store.create_experiment(p)
        rollup_tails._DECODED.clear()
        for i in range(300):  # lone points (write_lone) and batches (write) in turn
            n = 40 if i % 2 else 1
            it = np.arange(n, dtype=np.int64) + 100 * i
            chunk = SeriesChunk("loss", "train", it, np.full(n, -1, np.int64),
                                np.sin(it / 7.0), 1.7e9 + it * 0.01)  # fmt: skip
            store.append_points(p, 1, MetricBatch(None, 0, (chunk,)))
            assert len(rollup_tails._DECODED) == 1, i
        assert _blobs(sa.create_engine(migrated_db_url))[0] in rollup_tails._DECODED
    finally:
        store.close()
