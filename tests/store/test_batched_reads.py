"""A batched read (a compare view) downsamples every series of a rollup level together
(store/sql/rollup_batch.py): each answer must be bit for bit what a read of that series alone
gives, whatever the data: NaN and infinities, iterations logged out of order, epochs that go
back, series of several lengths (levels, blocks and rows), on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from mltrail.core.types import MetricBatch, SeriesChunk, SeriesQuery
from mltrail.store.sql import SqlStore

T0 = 1_764_331_200.0


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    values = np.cumsum(rng.normal(0, 1, n))
    special = rng.random(n)
    values[special < 0.02] = np.nan
    values[(special >= 0.02) & (special < 0.025)] = np.inf
    values[(special >= 0.025) & (special < 0.03)] = -np.inf
    values[int(n * 0.4) : int(n * 0.4) + 700] = np.nan  # whole buckets without a value
    values[int(n * 0.7) : int(n * 0.7) + 300] = 5.0  # ties: the first of equals is kept
    return values


def _log(store: SqlStore, project: int, rng: np.random.Generator, n: int, rewind: bool) -> None:
    """``n`` points of two series in batches of irregular sizes; ``rewind``: a batch halfway
    goes back 3,000 iterations (iterations out of arrival order), epochs now and then lower
    than the point before's at the same iteration."""
    exp = store.create_experiment(project).experiment_id
    it = np.arange(n, dtype=np.int64)
    if rewind:
        it[n // 2 :] -= 3000
    epochs = it // 1000
    epochs[rng.random(n) < 0.01] -= 1
    repeat = np.flatnonzero(rng.random(n) < 0.01)
    it[repeat[repeat > 0]] = it[repeat[repeat > 0] - 1]  # the same iteration twice
    times = T0 + np.cumsum(rng.uniform(0.001, 1.0, n))
    series = {"loss": _values(rng, n), "acc": _values(rng, n)}
    # iteration 0 twice, its epoch going back, the second point the lowest: the first point
    # and the first group's minimum share an iteration, ordered by epoch
    it[1], epochs[:2], series["loss"][1] = it[0], (1, 0), -1e12
    cuts = np.sort(rng.choice(np.arange(1, n), size=7, replace=False))
    for seq, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, n], strict=True)):
        part = slice(lo, hi)
        chunks = tuple(
            SeriesChunk(key, "train", it[part], epochs[part], values[part], times[part])
            for key, values in series.items()
        )
        store.append_points(project, exp, MetricBatch("c", seq, chunks))


@pytest.fixture
def filled(migrated_db_url: str):
    store = SqlStore.open(migrated_db_url)
    project = store.create_project("batched").id
    rng = np.random.default_rng(17)
    for n, rewind in (
        (20_000, False),
        (20_000, True),
        (9_000, True),
        (70_000, False),
        (900, False),
    ):
        _log(store, project, rng, n, rewind)
    yield store, project
    store.close()


@pytest.mark.parametrize("max_points", [2, 4, 5, 50, 333, 1000])
def test_a_batched_read_answers_each_series_bit_for_bit_as_a_read_alone(
    filled, max_points: int
) -> None:
    store, project = filled
    queries = [SeriesQuery(project, e) for e in range(1, 6)]
    queries.append(SeriesQuery(project, 2, "loss"))  # a series twice
    for times in (False, True):
        answers = store.read_series_batch(queries, max_points=max_points, times=times)
        assert len(answers) == 11
        for a in answers:
            assert a.series is not None and a.key is not None and a.phase is not None
            alone = store.read_series(
                project, a.experiment_id, a.key, a.phase, max_points=max_points, times=times
            )
            assert (a.series.total, a.series.downsampled) == (alone.total, alone.downsampled)
            for column in ("iterations", "epochs", "values"):
                got, want = getattr(a.series, column), getattr(alone, column)
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
            if times:
                assert a.series.times is not None and alone.times is not None
                np.testing.assert_array_equal(a.series.times, alone.times)
            else:
                assert a.series.times is None
        long = [
            a.series for a in answers if a.series is not None and a.series.total > 4 * max_points
        ]
        assert all(s.downsampled and len(s.values) <= max_points for s in long)
