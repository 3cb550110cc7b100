"""Series reads as charts and exports use them: wall-clock times, and enough points for the
resolution asked. Written against the Store interface (fixture ``store``), re-run through
HttpStore in ``tests/server/test_inprocess_series_contract.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mltrail.core.types import SeriesChunk
from mltrail.store.base import Store
from support.factories import batch

T0 = 1_764_331_200.0


@pytest.fixture
def project(store: Store):
    return store.create_project("series")


def _log(store: Store, project_id: int, n: int, per_batch: int, key: str = "loss") -> SeriesChunk:
    """``n`` random-walk points with irregular wall-clock times, in batches of ``per_batch``."""
    rng = np.random.default_rng(n)
    it = np.arange(n, dtype=np.int64)
    times = T0 + np.cumsum(rng.uniform(0.001, 2.0, n))  # pauses of up to 2 s
    values = np.cumsum(rng.normal(0, 0.01, n))
    whole = SeriesChunk(key, "train", it, np.full(n, -1), values, times)
    exp = store.create_experiment(project_id)
    for seq, start in enumerate(range(0, n, per_batch)):
        cut = slice(start, start + per_batch)
        part = SeriesChunk(key, "train", it[cut], whole.epochs[cut], values[cut], times[cut])
        store.append_points(project_id, exp.experiment_id, batch(seq, part))
    return whole


def test_a_full_read_returns_every_points_time_to_the_millisecond(store: Store, project) -> None:
    whole = _log(store, project.id, 3000, 700)
    s = store.read_series(project.id, 1, "loss", "train", times=True)
    assert s.times is not None and len(s.times) == 3000
    assert np.max(np.abs(s.times - whole.times)) <= 0.0005 + 1e-6
    assert store.read_series(project.id, 1, "loss", "train").times is None  # only when asked


@pytest.mark.parametrize("max_points", [50, 2000])
def test_a_downsampled_read_gives_each_returned_point_its_own_time(
    store: Store, project, max_points: int
) -> None:
    whole = _log(store, project.id, 100_000, 25_000)
    s = store.read_series(project.id, 1, "loss", "train", max_points=max_points, times=True)
    assert s.downsampled and s.times is not None and len(s.times) == len(s.iterations)
    want = np.round(whole.times[s.iterations] * 1000) / 1000
    np.testing.assert_allclose(s.times, want, rtol=0, atol=1e-6)
    zoom = store.read_series(
        project.id, 1, "loss", "train", max_points=200, start=40_000, end=60_000, times=True
    )
    assert zoom.times is not None
    np.testing.assert_allclose(zoom.times, whole.times[zoom.iterations], rtol=0, atol=0.0006)


@pytest.mark.parametrize("n", [10_000, 30_000, 100_000])
def test_a_chart_read_returns_about_the_points_asked_for(store: Store, project, n: int) -> None:
    """Mid-size series (10^4..10^5 points) are not read from a level too coarse for the chart:
    a 2,000-point read returns at least 1,500 points and keeps the series' extremes."""
    whole = _log(store, project.id, n, 5_000)
    for max_points in (500, 2000):
        s = store.read_series(project.id, 1, "loss", "train", max_points=max_points)
        assert 0.75 * max_points <= len(s.values) <= max_points
        assert s.values.min() == whole.values.min() and s.values.max() == whole.values.max()
        assert s.iterations[0] == 0 and s.iterations[-1] == n - 1
    assert not math.isnan(float(s.values[0]))
