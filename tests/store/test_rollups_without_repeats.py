"""Migration 0024: a series stores no rollup level whose one bucket repeats the finer level's
(``rollups.stored_levels``); an append that outgrows a level starts the coarser one from its
bucket, and every stored level still holds exactly the buckets of the points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import func, select

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore, rollup_levels, rollups
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.tables import metric_rollup_blocks, metric_series
from support.rollup_rows import legacy_rollups, tail_rows
from support.stores import migrate

_T0_MS = 1_700_000_000_000


def _points(start: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Iterations, epochs, values (a few NaN) and times (s, whole ms) of points from ``start``."""
    it = np.arange(start, start + n, dtype=np.int64)
    values = rng.normal(size=n)
    values[rng.random(n) < 0.02] = math.nan
    return it, it // 700, values, (_T0_MS + it * 13) / 1000.0


def _level_columns(store: SqlStore, series_id: int, level: int) -> dict[str, np.ndarray]:
    with store._db.read() as conn:
        table = rollup_levels.level_tables(conn, level, [series_id])[series_id]
    return {name: table[name] for name in ("bucket", *rollups.COLUMNS)}


def _stored_levels(store: SqlStore, series_id: int) -> set[int]:
    b = metric_rollup_blocks.c
    with store._db.read() as conn:
        rows = {row[1] for row in tail_rows(conn, [series_id])}
        blocks = conn.execute(select(b.level).where(b.series_id == series_id).distinct())
        return rows | set(blocks.scalars())


@pytest.mark.parametrize("seed", range(2))
def test_each_stored_level_holds_the_buckets_of_the_points(migrated_db_url: str, seed: int) -> None:
    """Appends of one point and of batches crossing each level's size (so a coarser level
    starts from the finer level's bucket, merged in or sealed at once): the levels stored are
    those :func:`rollups.stored_levels` names, each bucket the one computed from every point."""
    rng = np.random.default_rng(seed)
    store = SqlStore.open(migrated_db_url)
    p = store.create_project("repeats").id
    store.create_experiment(p)
    sizes = [1, 1, 61, 1, 1, 1, 400, 47, 1, 3600, 1, 28_700, 1, 2, 9000, *rng.integers(1, 20, 8)]
    held, columns = 0, []
    for seq, n in enumerate(sizes):
        cols = _points(held, int(n), rng)
        columns.append(cols)
        store.append_points(p, 1, MetricBatch("c", seq, (SeriesChunk("loss", "train", *cols),)))
        held += int(n)
        if seq % 3 and seq != len(sizes) - 1:
            continue
        with store._db.read() as conn:
            series_id = conn.execute(select(metric_series.c.id)).scalar_one()
        top = rollups.stored_levels(held)
        assert _stored_levels(store, series_id) == set(range(1, top + 1))
        it, ep, v, t = (np.concatenate(c) for c in zip(*columns, strict=True))
        millis = np.round(t * 1000).astype(np.int64)
        for level in range(1, top + 1):
            size = rollups.LEVEL_SIZES[level - 1]
            want = rollups.compute_buckets(np.zeros(held, np.int64), np.arange(held), size,
                                           it, ep, v, millis)  # fmt: skip
            got = _level_columns(store, series_id, level)
            for name in ("bucket", *rollups.COLUMNS):
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"{level} {name}")
    store.close()


def _rows(store: SqlStore) -> list[tuple]:
    with store._db.read() as conn:
        found = [tuple(math.nan if x is None else x for x in row) for row in tail_rows(conn)]
        return [tuple("NaN" if x != x else x for x in row) for row in found]


def test_the_downgrade_writes_the_repeated_levels_back_and_the_upgrade_drops_them(
    migrated_db_url: str,
) -> None:
    """Taken back to revision 0023, every series holds a row of each level at its last bucket
    (a copy of the finer level's bucket 0 where the level repeats it), as that revision's
    appends merge into; upgraded again, the rows are those before, and reads alike."""
    rng = np.random.default_rng(3)
    store = SqlStore.open(migrated_db_url)
    p = store.create_project("repeats").id
    store.create_experiment(p)
    counts = {"one": 1, "a": 63, "b": 64, "c": 65, "d": 600, "e": 5000}
    chunks = tuple(SeriesChunk(key, "train", *_points(0, n, rng)) for key, n in counts.items())
    store.append_points(p, 1, MetricBatch("c", 0, chunks))
    before = _rows(store)
    reads = {key: store.read_series(p, 1, key, "train", max_points=3).values for key in counts}
    store.close()

    migrate(migrated_db_url, "0023_rollup_blocks_compact", down=True)  # not opened: it upgrades
    db = Database(make_engine(migrated_db_url))
    r, s = legacy_rollups.c, metric_series.c
    with db.read() as conn:
        ids = dict(conn.execute(select(s.key, s.id)).all())
        for key, n in counts.items():
            for level, size in enumerate(rollups.LEVEL_SIZES, start=1):
                at = (r.series_id == ids[key], r.level == level, r.bucket == (n - 1) // size)
                assert conn.execute(select(func.count()).where(*at)).scalar_one() == 1, key
            top = rollups.stored_levels(n)
            one = [tuple("NaN" if x != x else x for x in row[3:]) for row in conn.execute(
                select(legacy_rollups).where(r.series_id == ids[key], r.level >= top)
                .order_by(r.level))]  # fmt: skip
            assert len(one) == 1 + len(rollups.LEVEL_SIZES) - top
            assert all(row == one[0] for row in one), key
    db.close()

    migrate(migrated_db_url, "head", down=False)
    store = SqlStore.open(migrated_db_url)
    assert _rows(store) == before
    for key in counts:
        again = store.read_series(p, 1, key, "train", max_points=3).values
        np.testing.assert_array_equal(again, reads[key])
    store.close()
