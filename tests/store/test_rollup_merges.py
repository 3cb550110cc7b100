"""An append merges the stored partial buckets of all its series and levels with numpy
(rollups.merge_stored), where it merged one bucket at a time in Python: the result must be
exactly that of the one-bucket merge (the one-point path still merges a bucket at a time), in
the arrays and in the rows stored, on SQLite (no -0.0, NaN as NULL) and on PostgreSQL."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from sqlalchemy import select

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore, rollups
from mltrail.store.sql.tables import experiments, metric_rollup_blocks, metric_series
from support.rollup_rows import clear_tail_columns, tail_rows

_ODD = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1.0, -1.0]


def _random_stored(rng: np.random.Generator) -> dict:
    """A stored partial as the one-bucket merge takes it: times absolute, None for NULL."""
    stored: dict = {"n": int(rng.integers(1, 60))}
    for part in rollups.PARTS:
        value = float(rng.choice(_ODD)) if rng.random() < 0.4 else float(rng.normal())
        stored.update({f"{part}_iteration": int(rng.integers(0, 30)),
                       f"{part}_epoch": int(rng.integers(-1, 3)),
                       f"{part}_value": None if math.isnan(value) else value,
                       f"{part}_time": None if rng.random() < 0.15
                       else float(rng.integers(1_000, 9_000))})  # fmt: skip
    return stored


@pytest.mark.parametrize("seed", range(60))
def test_merging_all_partials_at_once_equals_merging_one_bucket_at_a_time(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    series = np.sort(rng.integers(0, 6, n))
    ordinals = np.arange(n, dtype=np.int64) + int(rng.integers(0, 200))
    it = rng.integers(0, 30, n)
    values = rng.normal(size=n)
    odd = rng.random(n) < 0.3
    values[odd] = rng.choice(_ODD, int(odd.sum()))
    millis = rng.integers(1_000, 9_000, n)
    buckets = rollups.compute_buckets(series, ordinals, 8, it, rng.integers(-1, 3, n), values,
                                      millis)  # fmt: skip
    firsts = np.flatnonzero(rollups.changes(buckets["series"]))
    at = np.sort(rng.choice(firsts, int(rng.integers(1, len(firsts) + 1)), replace=False))
    stored = [_random_stored(rng) for _ in at]
    want = {name: column.copy() for name, column in buckets.items()}
    for i, one in zip(at.tolist(), stored, strict=True):  # the one-bucket merge of each
        bucket = [want[name][i].item() for name in rollups.COLUMNS]
        rollups._merge_lone(bucket, [one[name] for name in rollups.COLUMNS])
        for name, merged in zip(rollups.COLUMNS, bucket, strict=True):
            if name.endswith("_time") and want[name].dtype.kind in "iu" and math.isnan(merged):
                want[name] = want[name].astype(np.float64)
            want[name][i] = merged
    columns = {name: [s[name] for s in stored] for name in rollups.COLUMNS}
    rollups.merge_stored(buckets, at, columns)
    for name in rollups.COLUMNS:
        assert buckets[name].dtype == want[name].dtype, name
        got, expected = buckets[name], want[name]
        if got.dtype == np.float64:
            got, expected = got.view(np.uint64), expected.view(np.uint64)  # -0.0 and NaN too
        assert got.tolist() == expected.tolist(), name


def _chunk(key: str, iterations: np.ndarray, rng: np.random.Generator) -> SeriesChunk:
    n = len(iterations)
    values = rng.normal(size=n)
    odd = rng.random(n) < 0.1
    values[odd] = rng.choice(_ODD, int(odd.sum()))
    times = 1.7e9 + rng.integers(0, 10**6, n) / 1000.0
    return SeriesChunk(key, "train", iterations, rng.integers(-1, 3, n), values, times)


def _rollups(store: SqlStore, project: int, number: int) -> tuple[list, list]:
    """The experiment's rollup rows and blocks, by series key (NaN made comparable)."""
    s, b, e = metric_series.c, metric_rollup_blocks.c, experiments.c
    with store._db.read() as conn:
        pk = select(e.id).where(e.project_id == project, e.number == number).scalar_subquery()
        keys = dict(conn.execute(select(s.id, s.key).where(s.experiment_id == pk)).all())
        rows = [
            (keys[row[0]], *("NaN" if x != x else x for x in row[1:]))
            for row in tail_rows(conn, list(keys))
        ]
        blocks = [(keys[row.series_id], *row[1:])
                  for row in conn.execute(select(metric_rollup_blocks)
                                          .where(b.series_id.in_(keys)))]  # fmt: skip
    return sorted(rows, key=str), sorted(blocks, key=str)


def test_batches_store_the_rollups_of_the_same_points_appended_one_at_a_time(
    migrated_db_url: str,
) -> None:
    """Batches of two series (iterations going back between batches, re-logged ones, NaN,
    infinities and signed zeros, stored partials without times) store the rollup rows the
    one-point path stores for the same points in the same order."""
    rng = np.random.default_rng(17)
    store = SqlStore.open(migrated_db_url)
    p = store.create_project("merges").id
    batched, single = (store.create_experiment(p) for _ in range(2))
    at = {"a": 0, "b": 0}
    for seq in range(10):
        chunks = []
        for key in "ab":
            n = int(rng.integers(1, 130))
            back = rng.random() < 0.4  # iterations logged again: ties with the stored ones
            start = max(at[key] - int(rng.integers(0, 2)) * 60, 0) if back else at[key]
            it = np.sort(start + rng.integers(0, min(n, 64) if back else n, n))
            at[key] = max(at[key], int(it[-1]) + 1)
            chunks.append(_chunk(key, it, rng))
        store.append_points(p, batched.experiment_id, MetricBatch("b", seq, tuple(chunks)))
        for k, c in enumerate(chunks):
            for i in range(len(c.iterations)):
                one = SeriesChunk(c.key, c.phase, c.iterations[i : i + 1], c.epochs[i : i + 1],
                                  c.values[i : i + 1], c.times[i : i + 1])  # fmt: skip
                store.append_points(p, single.experiment_id,
                                    MetricBatch("s", seq * 10_000 + k * 1_000 + i, (one,)))  # fmt: skip
        if seq == 5:  # stored partials without times (as before migration 0012), in both
            with store._db.write() as conn:
                clear_tail_columns(conn, ("min_time", "last_time"), lambda row: row[1] >= 2)
    got, want = _rollups(store, p, batched.experiment_id), _rollups(store, p, single.experiment_id)
    assert len(got[0]) > 20 and any(row[1] == 2 for row in got[0])
    assert got == want
    store.close()


def _summary_alone(row, chunk: SeriesChunk) -> tuple:
    """A series row after one chunk, reduced on its own (as appends did, a chunk a time)."""
    finite = chunk.values[~np.isnan(chunk.values)]
    low = float(finite.min()) if finite.size else math.nan
    high = float(finite.max()) if finite.size else math.nan
    last = (float(chunk.values[-1]), int(chunk.iterations[-1]), int(chunk.epochs[-1]))
    if row.count and row.last_iteration is not None and row.last_iteration > last[1]:
        last = (row.last_value, row.last_iteration, row.last_epoch)
    old_min = math.nan if row.min_value is None else row.min_value
    old_max = math.nan if row.max_value is None else row.max_value
    extremes = (float(np.fmin(old_min, low)), float(np.fmax(old_max, high)))
    return (row.count + len(chunk), *last, *extremes, row.id)


@pytest.mark.parametrize("seed", range(30))
def test_a_batch_summarises_each_series_as_its_chunk_alone_would(seed: int) -> None:
    """The series rows an append writes (count, last point, min and max skipping NaN), all
    chunks reduced at once, equal each chunk's reduced alone, to the bit (NaN, infinities,
    which of 0.0 and -0.0)."""
    from types import SimpleNamespace

    from mltrail.store.sql.points import _summaries

    rng = np.random.default_rng(seed)
    rows, chunks = [], []
    for i in range(int(rng.integers(1, 8))):
        n = int(rng.integers(1, 6))
        values = rng.choice([*_ODD, 2.5, -3.0], n).astype(np.float64)
        it = np.sort(rng.integers(0, 9, n))
        chunks.append(SeriesChunk("k", "train", it, rng.integers(-1, 3, n), values, np.zeros(n)))
        count = int(rng.integers(0, 3))
        rows.append(SimpleNamespace(
            id=i, count=count, last_value=0.5, last_epoch=1,
            last_iteration=int(rng.integers(0, 12)) if count else None,
            min_value=None if rng.random() < 0.3 else float(rng.choice([*_ODD, 1.5])),
            max_value=None if rng.random() < 0.3 else float(rng.choice([*_ODD, 1.5])),
        ))  # fmt: skip
    want = [_summary_alone(r, c) for r, c in zip(rows, chunks, strict=True)]
    assert _as_bits(_summaries(rows, chunks)) == _as_bits(want)


@pytest.mark.parametrize("seed", range(10))
def test_one_point_chunks_summarise_as_each_alone_would(seed: int) -> None:
    """Chunks of one point each (synchronous log_metric calls) take a shortcut past the numpy
    reductions: the same series rows, to the bit, NaN, infinities and signed zeros among them."""
    from types import SimpleNamespace

    from mltrail.store.sql.points import _summaries

    rng = np.random.default_rng(seed)
    rows, chunks = [], []
    for i, value in enumerate(_ODD):
        it = np.array([int(rng.integers(0, 9))])
        chunks.append(SeriesChunk("k", "train", it, np.array([-1]), np.array([value]),
                                  np.zeros(1)))  # fmt: skip
        rows.append(SimpleNamespace(
            id=i, count=1, last_value=0.5, last_epoch=1, last_iteration=int(rng.integers(0, 12)),
            min_value=None if i % 3 == 0 else float(rng.choice([*_ODD, 1.5])),
            max_value=None if i % 3 == 1 else float(rng.choice([*_ODD, 1.5])),
        ))  # fmt: skip
    for picked in (slice(None), slice(seed % len(_ODD), seed % len(_ODD) + 1)):
        want = [_summary_alone(r, c) for r, c in zip(rows[picked], chunks[picked], strict=True)]
        assert _as_bits(_summaries(rows[picked], chunks[picked])) == _as_bits(want)


def _as_bits(rows: list[tuple]) -> list[list]:
    return [[struct.pack("<d", x) if isinstance(x, float) else x for x in row] for row in rows]
