"""Migration 0018 splits blocks of 128 buckets holding iterations past 2^53 and NaN, -NaN,
infinities and -0.0 values: the reads are bit for bit those before it."""

from __future__ import annotations

import math

import numpy as np

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore
from store.test_rollup_blocks import _pack_as_before_0018

_ODD = np.array([math.nan, -math.nan, math.inf, -math.inf, -0.0, 5e-324])


def _reads(store: SqlStore) -> list[np.ndarray]:
    out = []
    for max_points in (2, 100, 2_000, None):
        s = store.read_series(1, 1, "loss", "train", max_points=max_points, times=True)
        assert s.times is not None
        out += [s.iterations, s.epochs, s.values.view(np.int64), s.times, np.array([s.total])]
    return out


def test_blocks_past_2_53_with_odd_values_split_alike(db_url: str) -> None:
    rng = np.random.default_rng(53)
    n = 9_000  # level 1: 140 buckets, one block of 128
    offset = np.arange(n, dtype=np.int64)
    it = offset + 2**53 - 4_000
    values = rng.normal(size=n)
    values[rng.integers(0, n, 200)] = _ODD[rng.integers(0, len(_ODD), 200)]
    part = SeriesChunk("loss", "train", it, offset // 1000, values, 1.7e9 + offset * 0.013)
    store = SqlStore.open(db_url)
    p = store.create_project("split").id
    store.create_experiment(p)
    store.append_points(p, 1, MetricBatch("c", 0, (part,)))
    want = _reads(store)
    store.close()
    assert _pack_as_before_0018(db_url) >= 1
    store = SqlStore.open(db_url)  # migration 0018 splits the block in eight
    try:
        got = _reads(store)
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        store.close()
