"""Chart reads fetch only what downsampling uses; the result equals downsampling whole rows."""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy import select

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore, rollup_levels, rollups, series
from mltrail.store.sql.tables import metric_series
from support.factories import chunk


def _chunk(start: int, n: int, rng: np.random.Generator) -> SeriesChunk:
    it = np.arange(start, start + n, dtype=np.int64)
    values = rng.normal(size=n)
    values[rng.integers(0, n, 3)] = math.nan
    epochs = it // 1000
    return chunk("loss", it, values, epochs=epochs)


def _full_rows(conn, series_id: int, level: int) -> dict[str, np.ndarray]:
    """Every column of every bucket of the level (packed blocks and rows alike)."""
    table = rollup_levels.level_tables(conn, level, [series_id])[series_id]
    return {f"{p}_{f}": table[f"{p}_{f}"] for p in rollups.PARTS for f in rollups.POINT_FIELDS}


def test_level_read_equals_downsampling_every_column(migrated_db_url: str) -> None:
    rng = np.random.default_rng(5)
    store = SqlStore.open(migrated_db_url)
    try:
        p = store.create_project("read")
        store.create_experiment(p.id)
        for seq, start in enumerate(range(0, 300_000, 37_000)):
            n = min(37_000, 300_000 - start)
            store.append_points(p.id, 1, MetricBatch("c", seq, (_chunk(start, n, rng),)))
        with store._db.read() as conn:
            for max_points in (2, 7, 500, 2000):
                read = series.read_series(
                    conn, store._scope, (p.id, 1), "loss", "train", max_points
                )
                assert read.level >= 1
                sid = conn.execute(select(metric_series.c.id).limit(1)).scalar_one()
                want = rollups.downsample(_full_rows(conn, sid, read.level), max_points)
                s = read.series
                got = (s.iterations, s.epochs, s.values, s.times)
                for g, w in zip(got[:3], want[:3], strict=True):
                    np.testing.assert_array_equal(g, w)
                np.testing.assert_array_equal(got[3] * 1000.0, want[3])  # stored in ms
                assert read.series.iterations[0] == 0
                assert read.series.iterations[-1] == 299_999
                assert read.series.epochs[-1] == 299
    finally:
        store.close()


def test_range_read_uses_a_fine_level_and_few_rows(migrated_db_url: str) -> None:
    """A zoom into 6% of a long series reads about as many rows as a whole read does, from a
    finer level, and finds the same extremes as the raw points of the range (its ends on bucket
    edges of level 1; test_zoom_edges.py checks ends anywhere)."""
    rng = np.random.default_rng(6)
    store = SqlStore.open(migrated_db_url)
    try:
        p = store.create_project("zoom")
        store.create_experiment(p.id)
        chunks = [_chunk(start, 50_000, rng) for start in range(0, 1_000_000, 50_000)]
        for seq, c in enumerate(chunks):
            store.append_points(p.id, 1, MetricBatch("c", seq, (c,)))
        values = np.concatenate([c.values for c in chunks])
        with store._db.read() as conn:
            whole = series.read_series(conn, store._scope, (p.id, 1), "loss", "train", 500)
            zoom = series.read_series(
                conn, store._scope, (p.id, 1), "loss", "train", 500, 64 * 6000, 64 * 7000 - 1
            )
        assert 1 <= zoom.level < whole.level
        assert zoom.rows <= rollups.ITEMS_PER_POINT * 500
        assert len(zoom.series.values) > 400  # as many points as the chart asked for
        assert np.nanmax(zoom.series.values) == np.nanmax(values[64 * 6000 : 64 * 7000])
        assert np.nanmin(zoom.series.values) == np.nanmin(values[64 * 6000 : 64 * 7000])
    finally:
        store.close()
