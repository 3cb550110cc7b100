"""Points appended in many small batches (sealing blocks of 16 as they complete, format-2
chunks, compaction), rewound and appended again, read the same (chart and zoom reads, bit for
bit) as the same points written at once into another experiment; batches of two clients resent
from threads at once land once each (ingest receipts as runs of seqs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore

_ODD = np.array([math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e-45, 3.4e38])


def _points(start: int, n: int, rng: np.random.Generator, f32: bool) -> SeriesChunk:
    offset = np.arange(start, start + n, dtype=np.int64)
    it = offset + 2**53 - 3_000  # past a double's whole numbers half way
    values = rng.normal(size=n)
    if f32:
        values = values.astype(np.float32).astype(np.float64)
    odd = rng.integers(0, n, max(1, n // 40))
    values[odd] = _ODD[rng.integers(0, len(_ODD), len(odd))]
    times = 1.7e9 + offset * 0.013
    return SeriesChunk("loss", "train", it, offset // 1000, values, times)


def _read(store: SqlStore, p: int, e: int, max_points: int | None) -> list[np.ndarray]:
    s = store.read_series(p, e, "loss", "train", max_points=max_points, times=True)
    assert s.times is not None
    out = [s.iterations, s.epochs, s.values.view(np.int64), s.times, np.array([s.total])]
    lo, hi = int(s.iterations[len(s.iterations) // 3]), int(s.iterations[-1]) - 7
    z = store.read_series(p, e, "loss", "train", max_points=max_points, start=lo, end=hi)
    return [*out, z.iterations, z.values.view(np.int64), np.array([z.total])]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("f32", [True, False])
def test_small_batches_and_a_rewind_read_as_the_points_written_at_once(
    migrated_db_url: str, f32: bool
) -> None:
    rng = np.random.default_rng(3)
    store = SqlStore.open(migrated_db_url)
    try:
        p = store.create_project("review").id
        for _ in range(3):
            store.create_experiment(p)
        whole = _points(0, 6_000, rng, f32)
        seq = 0
        for at in range(0, 6_000, 250):
            part = SeriesChunk("loss", "train", *(c[at : at + 250] for c in
                               (whole.iterations, whole.epochs, whole.values, whole.times)))  # fmt: skip
            store.append_points(p, 1, MetricBatch("c", seq, (part,)))
            seq += 1
        cut = int(whole.iterations[3_333])
        store.rewind_points(p, 1, cut)
        again = _points(3_334, 2_000, np.random.default_rng(9), f32)
        store.append_points(p, 1, MetricBatch("c", seq, (again,)))
        keep = whole.iterations <= cut
        final = SeriesChunk("loss", "train",
                            *(np.concatenate([c[keep], d]) for c, d in
                              zip((whole.iterations, whole.epochs, whole.values, whole.times),
                                  (again.iterations, again.epochs, again.values, again.times),
                                  strict=True)))  # fmt: skip
        store.append_points(p, 2, MetricBatch("c", 0, (final,)))
        for max_points in (None, 3, 100, 2_000):
            _same(_read(store, p, 1, max_points), _read(store, p, 2, max_points))
        got = store.read_series(p, 1, "loss", "train")
        np.testing.assert_array_equal(got.values.view(np.int64), final.values.view(np.int64))
    finally:
        store.close()


def test_concurrent_resends_of_interleaved_batches_land_each_once(migrated_db_url: str) -> None:
    import threading

    store = SqlStore.open(migrated_db_url)
    try:
        p = store.create_project("race").id
        number = store.create_experiment(p).experiment_id
        rng = np.random.default_rng(5)
        plans = []
        for _ in range(4):  # each thread: the 40 seqs of two clients, shuffled, some twice
            order = [(c, s) for c in ("a", "b") for s in range(40)]
            order += [order[int(k)] for k in rng.integers(0, len(order), 20)]
            plans.append([order[int(k)] for k in rng.permutation(len(order))])
        landed: list[int] = []
        errors: list[BaseException] = []

        def send(plan: list[tuple[str, int]]) -> None:
            for client, seq in plan:
                it = np.array([seq], dtype=np.int64)
                part = SeriesChunk(f"m_{client}", "train", it, it * 0, it * 1.0, it + 1.7e9)
                try:
                    landed.append(store.append_points(p, number, MetricBatch(client, seq, (part,))))
                except Exception as exc:  # reported below
                    errors.append(exc)

        threads = [threading.Thread(target=send, args=(plan,)) for plan in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sum(landed) == 80
        for client in ("a", "b"):
            got = store.read_series(p, number, f"m_{client}", "train")
            assert got.iterations.tolist() == list(range(40))
    finally:
        store.close()
