"""Series reads as charts and exports use them: wall-clock times, and enough points for the
resolution asked. Written against the Store interface (fixture ``store``), re-run through
HttpStore in ``tests/server/test_inprocess_series_contract.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mltrail.core.errors import ValidationError
from mltrail.core.points import MAX_BATCH_SERIES
from mltrail.core.types import MAX_BATCH_CHUNKS, SeriesChunk, SeriesQuery
from mltrail.store.base import Store
from support.factories import batch, chunk

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


def test_a_batched_read_answers_every_series_as_single_reads_do(store: Store, project) -> None:
    """One call for a view: every series of one run (no key), one series of another, and
    entries that find nothing answer their error in place."""
    e1, e2 = store.create_experiment(project.id), store.create_experiment(project.id)
    rng = np.random.default_rng(1)
    keys = [f"k{i:03d}" for i in range(40)]
    parts = [chunk(k, range(3000), rng.normal(size=3000)) for k in keys]
    parts.append(chunk("acc", range(10), rng.normal(size=10), phase="validation"))
    store.append_points(project.id, e1.experiment_id, batch(0, *parts))
    store.append_points(project.id, e2.experiment_id, batch(0, chunk("loss", range(5), [1.0] * 5)))
    queries = [
        SeriesQuery(project.id, e1.experiment_id),
        SeriesQuery(project.id, e2.experiment_id, "loss"),
        SeriesQuery(project.id, e2.experiment_id, "missing"),
        SeriesQuery(project.id, 99, "loss"),
        SeriesQuery(project.id, e1.experiment_id, phase="validation"),
    ]
    answers = store.read_series_batch(queries, max_points=500, start=100, times=True)
    assert [(a.experiment_id, a.phase, a.key) for a in answers] == [
        *((1, "train", k) for k in keys),
        (1, "validation", "acc"),
        (2, "train", "loss"),
        (2, "train", "missing"),
        (99, "train", "loss"),
        (1, "validation", "acc"),
    ]
    assert answers[-3].error == "not_found" and "missing" in (answers[-3].message or "")
    assert answers[-2].error == "not_found" and answers[-2].series is None
    for a in answers[:41] + answers[-1:]:
        assert a.series is not None and a.error is None
        single = store.read_series(
            project.id, a.experiment_id, a.key, a.phase, max_points=500, start=100, times=True
        )
        for column in ("iterations", "epochs", "values", "times"):
            np.testing.assert_array_equal(getattr(a.series, column), getattr(single, column))
        assert (a.series.total, a.series.downsampled) == (single.total, single.downsampled)
    assert answers[0].series is not None and len(answers[0].series.values) == 500
    plain = store.read_series_batch(queries[1:2], max_points=10)
    assert plain[0].series is not None and plain[0].series.times is None


def test_a_batched_read_of_too_many_series_is_refused(store: Store, project) -> None:
    exp = store.create_experiment(project.id)
    keys = [f"m{i}" for i in range(MAX_BATCH_SERIES + 1)]
    store.append_points(
        project.id, exp.experiment_id, batch(0, *(chunk(k, [0], [1.0]) for k in keys))
    )
    with pytest.raises(ValidationError) as err:
        store.read_series_batch([SeriesQuery(project.id, exp.experiment_id)], max_points=10)
    assert err.value.field == "series"


def test_a_batch_of_too_many_chunks_or_an_empty_chunk_is_refused(store: Store, project) -> None:
    exp = store.create_experiment(project.id).experiment_id
    many = batch(0, *(chunk(f"m{i}", [0], [1.0]) for i in range(MAX_BATCH_CHUNKS + 1)))
    with pytest.raises(ValidationError) as err:
        store.append_points(project.id, exp, many)
    assert err.value.field == "chunks" and str(MAX_BATCH_CHUNKS) in str(err.value)
    empty = batch(1, chunk("loss", [0], [1.0]), chunk("acc", [], []))
    with pytest.raises(ValidationError) as err:
        store.append_points(project.id, exp, empty)
    assert err.value.field in ("acc.n", "chunks[1].n")  # the store's name, the wire's
    assert store.list_series(project.id, exp) == []  # nothing of either batch was stored
    full = batch(2, *(chunk(f"m{i}", [0], [1.0]) for i in range(MAX_BATCH_CHUNKS)))
    assert store.append_points(project.id, exp, full) == MAX_BATCH_CHUNKS  # the cap itself


def test_small_flushes_read_back_exactly_as_one_batch(store: Store, project) -> None:
    """10-point flushes (compacted as they grow) read back, whole, zoomed and downsampled,
    exactly as the same points sent in one batch: values to the bit, NaN, epochs, times."""
    rng = np.random.default_rng(2)
    n = 9_000
    it = np.arange(n, dtype=np.int64)
    values = np.cumsum(rng.normal(0, 0.01, n))
    values[rng.integers(0, n, 20)] = np.nan
    whole = SeriesChunk(
        "loss", "train", it, it // 1000, values, T0 + np.cumsum(rng.uniform(0, 1, n))
    )
    one, flushed = store.create_experiment(project.id), store.create_experiment(project.id)
    store.append_points(project.id, one.experiment_id, batch(0, whole))
    for seq, start in enumerate(range(0, n, 10)):
        cut = slice(start, start + 10)
        part = SeriesChunk(
            "loss", "train", it[cut], whole.epochs[cut], values[cut], whole.times[cut]
        )
        store.append_points(project.id, flushed.experiment_id, batch(seq, part))
    for options in ({}, {"start": 4000, "end": 4500}, {"max_points": 300}, {"max_points": 2000}):
        a, b = (
            store.read_series(project.id, e.experiment_id, "loss", "train", times=True, **options)
            for e in (one, flushed)
        )
        for column in ("iterations", "epochs", "values", "times"):
            np.testing.assert_array_equal(getattr(a, column), getattr(b, column))
    full = store.read_series(project.id, flushed.experiment_id, "loss", "train")
    assert full.values.view(np.int64).tolist() == values.view(np.int64).tolist()
