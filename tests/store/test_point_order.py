"""Points logged out of iteration order (MLflow clients may log steps in any order, and users
re-log a step): every point is kept, and every read returns the points ordered by iteration,
ties in arrival order, whatever the order they arrived in. Written against the Store interface
(fixture ``store``: SqlStore on SQLite and on PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from mltrail.core.types import SeriesChunk
from mltrail.store.base import Store
from support.factories import T0, batch, chunk


@pytest.fixture
def run(store: Store) -> tuple[Store, int]:
    project = store.create_project("order")
    store.create_experiment(project.id)
    return store, project.id


def _bits(values: np.ndarray) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


def test_a_batch_logged_out_of_order_reads_back_in_iteration_order(run) -> None:
    store, pid = run
    odd = [float("nan"), -0.0, float("inf"), 3.0, float("-inf"), 9.5, 0.0]
    store.append_points(pid, 1, batch(0, chunk("loss", [5, 4, 3, 2, 1, 9, 0], odd)))
    s = store.read_series(pid, 1, "loss", "train", times=True)
    assert s.iterations.tolist() == [0, 1, 2, 3, 4, 5, 9]
    order = [6, 4, 3, 2, 1, 0, 5]
    assert _bits(s.values) == _bits(np.array(odd)[order])  # NaN, inf and -0.0 bit-exact
    assert s.times is not None
    np.testing.assert_allclose(s.times, T0 + np.array(order) * 0.01, rtol=0, atol=1e-6)
    assert store.read_series(pid, 1, "loss", "train", start=2, end=4).iterations.tolist() == [
        2,
        3,
        4,
    ]
    small = store.read_series(pid, 1, "loss", "train", max_points=3)
    assert small.iterations[0] == 0 and small.iterations[-1] == 9
    (summary,) = store.list_series(pid, 1)
    assert summary.last_iteration == 9 and summary.last == 9.5  # the highest step, as MLflow
    assert summary.count == 7


def test_a_later_batch_with_lower_iterations_is_merged_into_order(run) -> None:
    store, pid = run
    store.append_points(pid, 1, batch(0, chunk("loss", range(100, 200), np.arange(100.0, 200))))
    store.append_points(pid, 1, batch(1, chunk("loss", range(100), np.arange(100.0))))
    store.append_points(pid, 1, batch(1, chunk("loss", range(100), np.arange(100.0))))  # resent
    s = store.read_series(pid, 1, "loss", "train")
    assert s.iterations.tolist() == list(range(200))
    assert s.values.tolist() == [float(i) for i in range(200)]
    r = store.read_series(pid, 1, "loss", "train", start=50, end=150)
    assert r.iterations.tolist() == list(range(50, 151))
    assert store.read_series(pid, 1, "loss", "train", start=0, end=9).values.tolist() == [
        float(i) for i in range(10)
    ]
    assert store.list_series(pid, 1)[0].last_iteration == 199  # not the last batch's 99


def test_a_relogged_iteration_keeps_both_points_in_arrival_order(run) -> None:
    store, pid = run
    store.append_points(pid, 1, batch(0, chunk("loss", [1, 2, 3, 2], [1.0, 2.0, 3.0, 2.5])))
    store.append_points(pid, 1, batch(1, chunk("loss", [2, 1], [2.75, 1.5])))
    s = store.read_series(pid, 1, "loss", "train")
    assert s.iterations.tolist() == [1, 1, 2, 2, 2, 3]
    assert s.values.tolist() == [1.0, 1.5, 2.0, 2.5, 2.75, 3.0]
    r = store.read_series(pid, 1, "loss", "train", start=2, end=2)
    assert r.values.tolist() == [2.0, 2.5, 2.75]


@pytest.mark.parametrize("per_batch", [997, 5000])
def test_a_shuffled_long_series_downsamples_with_its_extremes(run, per_batch: int) -> None:
    """Rollup levels (arrival buckets) still give a downsampled read the series' first and
    last iterations and its extremes, and each returned point is a logged one."""
    store, pid = run
    n = 40_000
    rng = np.random.default_rng(7)
    values = np.cumsum(rng.normal(0, 1.0, n))
    arrival = rng.permutation(n)
    for seq, lo in enumerate(range(0, n, per_batch)):
        idx = arrival[lo : lo + per_batch]
        part = SeriesChunk(
            "loss",
            "train",
            idx.astype(np.int64),
            np.full(len(idx), -1),
            values[idx],
            T0 + idx * 0.01,
        )
        store.append_points(pid, 1, batch(seq, part))
    full = store.read_series(pid, 1, "loss", "train")
    assert full.iterations.tolist() == list(range(n))
    assert _bits(full.values) == _bits(values)
    for max_points in (50, 400, 2000):
        s = store.read_series(pid, 1, "loss", "train", max_points=max_points)
        assert s.downsampled and len(s.iterations) <= max_points
        assert s.iterations[0] == 0 and s.iterations[-1] == n - 1
        assert bool(np.all(np.diff(s.iterations) >= 0))
        assert _bits(s.values) == _bits(values[s.iterations])
        assert s.values.min() == values.min() and s.values.max() == values.max()
    zoom = store.read_series(pid, 1, "loss", "train", start=10_000, end=12_000)
    assert zoom.iterations.tolist() == list(range(10_000, 12_001))
    z = store.read_series(pid, 1, "loss", "train", max_points=200, start=10_000, end=30_000)
    assert len(z.iterations) and bool(np.all((z.iterations >= 10_000) & (z.iterations <= 30_000)))
    assert _bits(z.values) == _bits(values[z.iterations])
    inside = values[10_000:30_001]
    assert z.values.min() == inside.min() and z.values.max() == inside.max()
