"""A zoomed downsampled read keeps what the raw points of its range hold: their min and max
and their first and last points, whatever buckets straddle the range's ends (checked against
a brute-force evaluation of random series and random ranges)."""

from __future__ import annotations

import numpy as np
import pytest

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore, series
from support.factories import chunk


def _batches(rng: np.random.Generator, total: int, back: bool) -> list[SeriesChunk]:
    """Random batches of iterations growing by 0-3 (repeats: ties at bucket edges), values
    with NaN runs; with ``back``, a few batches go back to earlier iterations."""
    out, at, done = [], 0, 0
    while done < total:
        n = int(rng.integers(1, 12_000))
        steps = rng.choice([0, 1, 1, 1, 2, 3], size=n)
        it = at + np.cumsum(steps)
        if back and rng.random() < 0.15:
            it = it - int(rng.integers(0, at + 1))  # logged again from an earlier iteration
        else:
            at = int(it[-1])
        values = rng.normal(size=n) * rng.choice([1.0, 1e3])
        values[rng.random(n) < 0.01] = np.nan
        out.append(chunk("loss", it, values, epochs=it // 5000))
        done += n
    return out


def _truth(batches: list[SeriesChunk]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every point as stored: each batch in iteration order, then the whole series (stable:
    ties keep their arrival order)."""
    parts = []
    for b in batches:
        order = np.argsort(b.iterations, kind="stable")
        parts.append((b.iterations[order], b.epochs[order], b.values[order]))
    it, ep, v = (np.concatenate([p[k] for p in parts]) for k in range(3))
    order = np.argsort(it, kind="stable")
    return it[order], ep[order], v[order]


def _same(a: float, b: float) -> bool:
    return bool(np.isnan(a) and np.isnan(b)) or a == b


@pytest.mark.parametrize("back", [False, True], ids=["in-order", "going-back"])
def test_zoomed_reads_keep_the_range_extremes_and_ends(migrated_db_url: str, back: bool) -> None:
    rng = np.random.default_rng(17 + back)
    batches = _batches(rng, 160_000, back)
    it, ep, v = _truth(batches)
    store = SqlStore.open(migrated_db_url)
    try:
        p = store.create_project("zoom")
        store.create_experiment(p.id)
        for seq, b in enumerate(batches):
            store.append_points(p.id, 1, MetricBatch("c", seq, (b,)))
        levels = set()
        with store._db.read() as conn:
            for case in range(40):
                lo, hi = sorted(int(x) for x in rng.integers(it[0] - 10, it[-1] + 10, 2))
                if case % 4 == 0:  # a narrow zoom
                    hi = lo + int(rng.integers(0, 3000))
                max_points = int(rng.choice([4, 10, 50, 300, 1000]))
                read = series.read_series(
                    conn, store._scope, (p.id, 1), "loss", "train", max_points, lo, hi
                )
                levels.add(read.level)
                s = read.series
                inside = (it >= lo) & (it <= hi)
                what = f"case {case}: [{lo}, {hi}] at {max_points} points, level {read.level}"
                if not inside.any():
                    assert len(s.iterations) == 0, what
                    continue
                assert 0 < len(s.iterations) <= max_points, what
                assert s.iterations.min() >= lo and s.iterations.max() <= hi, what
                first = (it[inside][0], ep[inside][0], v[inside][0])
                last = (it[inside][-1], ep[inside][-1], v[inside][-1])
                assert (s.iterations[0], s.epochs[0]) == first[:2], what
                assert _same(s.values[0], first[2]), what
                assert (s.iterations[-1], s.epochs[-1]) == last[:2], what
                assert _same(s.values[-1], last[2]), what
                if np.isnan(v[inside]).all():
                    assert np.isnan(s.values).all(), what
                    continue
                assert np.nanmin(s.values) == np.nanmin(v[inside]), what
                assert np.nanmax(s.values) == np.nanmax(v[inside]), what
        assert max(levels) >= 2  # straddling buckets split across levels, not only raw reads
    finally:
        store.close()
