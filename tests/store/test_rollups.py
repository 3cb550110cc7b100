"""Pure numpy parts of the metric layout: chunk codec, buckets, level choice, downsampling."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from mltrail.core import chunk_codec as chunks
from mltrail.core.types import SeriesChunk
from mltrail.store.sql import rollups


def test_chunk_codec_round_trips_bit_exact() -> None:
    odd_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF4_0000_0000_0001))[0]
    values = np.array([1.5, math.nan, math.inf, -math.inf, -0.0, odd_nan, 1e-310])
    it = np.array([0, 1, 5, 5, 1_000_000_000_000, 3, 4], dtype=np.int64)
    ep = np.array([-1, 0, 0, 1, 2, -1, 7], dtype=np.int64)
    times = np.array([1.7e9, 1.7e9 + 0.001, 1.7e9 + 2, 1.7e9 + 2, 1.7e9 - 5, 1.7e9, 1.7e9])
    data = chunks.encode_chunk(SeriesChunk("k", "train", it, ep, values, times))
    got_it, got_ep, got_values, got_times = chunks.decode_chunk(data, len(it))
    assert got_it.tolist() == it.tolist() and got_ep.tolist() == ep.tolist()
    assert got_values.view(np.uint64).tolist() == values.view(np.uint64).tolist()
    assert np.allclose(got_times, times, rtol=0, atol=0.0005)


def test_chunks_decode_together_into_one_set_of_columns() -> None:
    """decode_chunks writes each chunk into its slice: the result equals the chunks' points in
    order, whatever planes each chunk keeps constant, and no rows give empty columns."""
    rng = np.random.default_rng(3)
    pieces = [
        (np.arange(5, 9), np.full(4, -1), np.full(4, 0.5), 1.7e9 + np.arange(4) * 0.01),
        (
            np.array([100, 3, 10**15]),
            np.array([2, -1, 9]),
            np.array([math.nan, -0.0, 1e300]),
            np.array([1.7e9, 1.6e9, 1.8e9]),
        ),
        (np.arange(2_000), np.arange(2_000) // 7, rng.normal(size=2_000), rng.random(2_000) * 1e9),
    ]
    rows = [
        (chunks.encode_chunk(SeriesChunk("k", "train", it, ep, v, t)), len(it))
        for it, ep, v, t in pieces
    ]
    got = chunks.decode_chunks(rows)
    want = [np.concatenate([p[i] for p in pieces]) for i in range(4)]
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
    assert got[2].view(np.uint64).tolist() == want[2].view(np.uint64).tolist()
    assert np.allclose(got[3], want[3], rtol=0, atol=0.0005)
    assert [len(c) for c in chunks.decode_chunks([])] == [0, 0, 0, 0]


def test_chunks_encoded_together_each_read_back_alone() -> None:
    """encode_chunks builds the planes of a whole batch at once: each chunk's bytes still
    decode to exactly its own points, whatever its length (one point too) and neighbours."""
    rng = np.random.default_rng(5)
    odd_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF4_0000_0000_0001))[0]
    pieces = [
        SeriesChunk("a", "train", np.array([7]), np.array([-1]), np.array([odd_nan]),
                    np.array([1.7e9])),
        SeriesChunk("b", "train", np.arange(50) * 3, np.full(50, 2), rng.normal(size=50),
                    1.7e9 + np.arange(50) * 0.01),
        SeriesChunk("c", "train", np.array([10**15, 3, 3]), np.array([9, -1, 0]),
                    np.array([-0.0, math.inf, 1e-310]), np.array([1.8e9, 1.6e9, 1.7e9])),
        SeriesChunk("d", "train", np.array([4, 4]), np.array([0, 0]), np.array([1.0, 1.0]),
                    np.array([1.7e9, 1.7e9])),
    ]  # fmt: skip
    for chunk, data in zip(pieces, chunks.encode_chunks(pieces), strict=True):
        it, ep, values, times = chunks.decode_chunk(data, len(chunk))
        assert it.tolist() == chunk.iterations.tolist() and ep.tolist() == chunk.epochs.tolist()
        assert values.view(np.uint64).tolist() == chunk.values.view(np.uint64).tolist()
        assert np.allclose(times, chunk.times, rtol=0, atol=0.0005)
        assert data == chunks.encode_chunk(chunk)  # the same bytes as encoded alone


@pytest.mark.parametrize("stored_below", [0, 1, 2, 64])
def test_a_lone_point_packs_to_the_bytes_the_array_path_gives(stored_below: int) -> None:
    """A one-point chunk packed alone (plain Python, an MLflow log_metric's) gives the very
    bytes it gets packed among others (numpy), NaN payloads, -0.0 and half milliseconds too."""
    rng = np.random.default_rng(stored_below)
    odd_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF4_0000_0000_0003))[0]
    values = [odd_nan, -0.0, math.inf, -math.inf, 5e-324, *rng.normal(size=20)]
    times = [1.7e9 + 0.0005, 1.7e9 + 0.0015, -1e9 - 0.0025, 0.0, *(rng.random(21) * 2e9)]
    other = SeriesChunk("z", "train", np.arange(3), np.full(3, 2), np.ones(3), np.full(3, 1e9))
    for k, (value, t) in enumerate(zip(values, times, strict=False)):
        lone = SeriesChunk("a", "train", np.array([k * 10**13]), np.array([k % 3 - 1]),
                           np.array([value]), np.array([t]))  # fmt: skip
        alone = chunks.encode_chunks([lone], stored_below)[0]
        assert alone == chunks.encode_chunks([lone, other], stored_below)[0], (value, t)
        it, ep, got, _ = chunks.decode_chunk(alone, 1)
        assert (it[0], ep[0]) == (k * 10**13, k % 3 - 1)
        assert got.view(np.uint64)[0] == np.array([value]).view(np.uint64)[0]


def test_chunks_below_stored_below_are_packed_without_deflating_and_read_the_same() -> None:
    """An append packs a chunk a compaction will pack again without deflating it (zlib's
    level 0, the same format): its points read back exactly; larger chunks deflate as ever."""
    pieces = [
        SeriesChunk(k, "train", np.arange(n), np.full(n, -1), np.tile([0.5, 0.25, 2.0], n)[:n],
                    1.7e9 + np.arange(n) * 0.01)
        for k, n in (("a", 50), ("b", 300))
    ]  # fmt: skip
    small, large = chunks.encode_chunks(pieces, stored_below=100)
    assert large == chunks.encode_chunk(pieces[1])
    assert len(small) > len(chunks.encode_chunk(pieces[0]))  # its repeats not deflated
    for chunk, data in ((pieces[0], small), (pieces[1], large)):
        it, ep, values, times = chunks.decode_chunk(data, len(chunk))
        assert it.tolist() == chunk.iterations.tolist() and ep.tolist() == [-1] * len(chunk)
        assert values.tolist() == chunk.values.tolist()
        assert np.allclose(times, chunk.times, rtol=0, atol=0.0005)
        assert chunks.unpack_chunk(data, len(chunk), "data")[2].tolist() == values.tolist()


@pytest.mark.parametrize("seed", range(12))
def test_many_small_chunks_decode_as_decode_chunks_decodes_them(seed: int) -> None:
    """decode_many (compaction's decoder) gives decode_chunks' very columns, bit for bit,
    whatever planes each chunk keeps constant, for one-point chunks too."""
    rng = np.random.default_rng(seed)
    odd = [math.nan, -0.0, math.inf, -math.inf, 1e-310, 5e-324]
    rows = []
    for _ in range(int(rng.integers(1, 60))):
        n = int(rng.choice([1, 2, 7, 50, 300]))
        it = np.sort(rng.integers(0, 10 ** int(rng.integers(1, 18)), n))
        if n > 3 and rng.random() < 0.3:
            it[-2:] -= 1  # going back
        ep = np.full(n, -1) if rng.random() < 0.5 else rng.integers(-1, 2**31 - 1, n)
        values = np.cumsum(rng.normal(size=n)) if rng.random() < 0.7 else np.full(n, 0.25)
        values[rng.random(n) < 0.1] = rng.choice(odd)
        times = 1.7e9 + np.sort(rng.integers(0, 10**7, n)) / 1000.0
        chunk = SeriesChunk("k", "train", it, ep, values, times)
        rows.append((chunks.encode_chunk(chunk), n))
    got, want = chunks.decode_many(rows), chunks.decode_chunks(rows)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.flags.c_contiguous
        assert a.view(np.uint64).tolist() == b.view(np.uint64).tolist()


def test_decoded_columns_keep_only_their_own_memory() -> None:
    """Each column a read returns holds its own buffer: a caller keeping a series' values alone
    does not keep its iterations, epochs and times alive too (4x the memory of what it kept)."""
    it = np.arange(1_000)
    data = chunks.encode_chunk(SeriesChunk("k", "train", it, -np.ones(1_000, np.int64), it * 0.5,
                                           1.7e9 + it * 0.001))  # fmt: skip
    for column in chunks.decode_chunks([(data, 1_000), (data, 1_000)]):
        owner = column if column.base is None else column.base
        assert owner.nbytes == column.nbytes == 2_000 * 8


def test_packed_chunks_are_small_for_regular_series() -> None:
    n = 10_000
    it = np.arange(n, dtype=np.int64)
    chunk = SeriesChunk(
        "k", "train", it, it // 1000, np.random.default_rng(0).normal(size=n), 1.7e9 + it * 0.02
    )
    assert len(chunks.encode_chunk(chunk)) < 9 * n


def test_buckets_ignore_nan_and_keep_nan_when_all_nan() -> None:
    values = np.array([math.nan, 3.0, 1.0, math.nan, math.nan, math.nan, math.nan, math.inf])
    n = len(values)
    it = np.arange(10, 10 + n, dtype=np.int64)
    ep = np.full(n, -1, dtype=np.int64)
    series = np.zeros(n, dtype=np.int64)
    b = rollups.compute_buckets(series, np.arange(2, 2 + n, dtype=np.int64), 3, it, ep, values)
    # ordinals 2..9 with size 3: buckets 0:[2], 1:[3,4,5], 2:[6,7,8], 3:[9]
    assert b["bucket"].tolist() == [0, 1, 2, 3] and b["n"].tolist() == [1, 3, 3, 1]
    assert math.isnan(b["min_value"][0]) and b["min_iteration"][0] == 10
    assert b["min_value"][1] == 1.0 and b["min_iteration"][1] == 12
    assert b["max_value"][1] == 3.0 and b["max_iteration"][1] == 11
    assert math.isnan(b["min_value"][2]) and math.isnan(b["max_value"][2])
    assert b["max_value"][3] == math.inf and b["last_iteration"][3] == 17


@pytest.mark.parametrize("value", [2.5, math.nan])
def test_a_lone_point_makes_the_buckets_the_general_path_makes(value: float) -> None:
    """One point (a sync log_metric) takes a shortcut at every level: the same buckets as when
    it comes with another series' point, and each part its own copy (a merge changes that
    part only, never the point's columns nor the coarser level folded from it)."""
    it, ep, v, ms = np.array([7, 9]), np.array([-1, 2]), np.array([value, 1.0]), np.array([5, 6])
    pair = rollups.compute_buckets(np.array([0, 1]), np.array([700, 3]), 64, it, ep, v, ms)
    alone = rollups.compute_buckets(np.zeros(1, np.int64), np.array([700]), 64, *(
        c[:1] for c in (it, ep, v, ms)))  # fmt: skip
    for got, want in ((alone, pair), *((rollups.coarser_buckets(b, 8) for b in (alone, pair)),)):
        assert list(got) == list(want)
        for name, column in got.items():
            np.testing.assert_array_equal(column, want[name][:1], err_msg=name)  # NaN == NaN
    coarse = rollups.coarser_buckets(alone, 8)
    stored = {"n": 3, **{f"{p}_{f}": 0 for p in rollups.PARTS for f in rollups.POINT_FIELDS}}
    stored.update(min_value=-1.0, max_value=-1.0)
    rollups.merge_into(alone, 0, stored)
    assert alone["n"][0] == 4 and alone["min_value"][0] == -1.0 and alone["min_iteration"][0] == 0
    assert alone["last_iteration"][0] == 7 and alone["first_iteration"][0] == 0
    assert coarse["n"][0] == 1 and coarse["first_iteration"][0] == 7
    np.testing.assert_array_equal(v, [value, 1.0])  # the point's columns untouched
    assert it.tolist() == [7, 9]


def test_merge_keeps_stored_first_point_and_better_extremes() -> None:
    n = 2
    b = rollups.compute_buckets(
        np.zeros(n, dtype=np.int64),
        np.array([2, 3]),
        4,
        np.array([7, 8]),
        np.array([0, 0]),
        np.array([5.0, math.nan]),
    )
    stored = {"n": 2, **{f"{p}_{f}": None for p in rollups.PARTS for f in rollups.POINT_FIELDS}}
    stored.update(first_iteration=1, first_epoch=0, min_iteration=1, min_epoch=0, max_iteration=1)
    stored.update(max_epoch=0, min_value=9.0, max_value=9.0, last_iteration=1, last_epoch=0)
    rollups.merge_into(b, 0, stored)
    assert b["n"][0] == 4 and b["first_iteration"][0] == 1
    assert b["min_value"][0] == 5.0 and b["min_iteration"][0] == 7
    assert b["max_value"][0] == 9.0 and b["max_iteration"][0] == 1
    assert b["last_iteration"][0] == 8


def test_merge_after_points_logged_out_of_order_keeps_the_lowest_and_highest_iteration() -> None:
    """A stored partial bucket of iterations 10..20, then points at 3..4: first is the new
    point at 3, last stays the stored one at 20."""
    b = rollups.compute_buckets(
        np.zeros(2, dtype=np.int64),
        np.array([2, 3]),
        4,
        np.array([3, 4]),
        np.array([0, 0]),
        np.array([5.0, 6.0]),
    )
    stored = {"n": 2, **{f"{p}_{f}": 0 for p in rollups.PARTS for f in rollups.POINT_FIELDS}}
    stored.update(first_iteration=10, last_iteration=20, last_value=7.0, first_value=1.0)
    stored.update(min_iteration=10, min_value=1.0, max_iteration=20, max_value=7.0)
    rollups.merge_into(b, 0, stored)
    assert b["first_iteration"][0] == 3 and b["first_value"][0] == 5.0
    assert b["last_iteration"][0] == 20 and b["last_value"][0] == 7.0
    assert b["min_value"][0] == 1.0 and b["max_value"][0] == 7.0


def test_choose_level_bounds_items_read() -> None:
    assert rollups.choose_level(1000, 2000) == 0
    assert rollups.choose_level(rollups.ITEMS_PER_POINT * 2000, 2000) == 0
    for total in (10**5, 10**6, 10**7, 10**8):
        level = rollups.choose_level(total, 2000)
        assert level >= 1
        assert math.ceil(total / rollups.LEVEL_SIZES[level - 1]) <= rollups.ITEMS_PER_POINT * 2000


def test_choose_level_keeps_enough_buckets_for_the_resolution() -> None:
    """A level is used only when it has a bucket per group of the chart: a 10^4-point series
    at 2,000 points is read raw, not from 157 level-1 buckets (about 300 points)."""
    for max_points in (100, 500, 2000):
        groups = rollups.groups_for(max_points)
        for total in (10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6, 10**7):
            level = rollups.choose_level(total, max_points)
            if level:
                assert math.ceil(total / rollups.LEVEL_SIZES[level - 1]) >= groups
            else:
                assert math.ceil(total / rollups.LEVEL_SIZES[0]) < groups or (
                    total <= rollups.ITEMS_PER_POINT * max_points
                )


def test_downsample_of_raw_points() -> None:
    n = 10_000
    v = np.sin(np.arange(n) / 100.0)
    v[5000:5100] = np.nan
    v[4321] = 10.0
    it = np.arange(n, dtype=np.int64)
    ep = np.zeros(n, dtype=np.int64)
    items = {
        f"{p}_{f}": a
        for p in rollups.PARTS
        for f, a in zip(rollups.POINT_FIELDS[:3], (it, ep, v), strict=True)
    }
    got_it, _, got_v, got_t = rollups.downsample(items, 100)
    assert np.isnan(got_t).all()  # no times given
    assert len(got_it) <= 100
    assert got_it[0] == 0 and got_it[-1] == n - 1 and np.all(np.diff(got_it) >= 0)
    assert 10.0 in got_v.tolist() and 4321 in got_it.tolist()


def test_chunk_codec_handles_one_point_and_constant_columns() -> None:
    for n in (1, 2, 500):
        it = np.full(n, 7, dtype=np.int64) if n == 2 else np.arange(3, 3 + n, dtype=np.int64)
        chunk = SeriesChunk(
            "k", "train", it, np.full(n, -1), np.full(n, 0.25), np.full(n, 1.7e9 + 0.5)
        )
        got_it, got_ep, got_values, got_times = chunks.decode_chunk(chunks.encode_chunk(chunk), n)
        assert got_it.tolist() == it.tolist() and got_ep.tolist() == [-1] * n
        assert got_values.tolist() == [0.25] * n and got_times.tolist() == [1.7e9 + 0.5] * n


def _fold_case() -> tuple[np.ndarray, ...]:
    """Points of several series, ordinals not starting at a boundary, ties, -0.0, NaN runs,
    all-NaN buckets, a re-logged iteration and times in milliseconds."""
    rng = np.random.default_rng(11)
    lengths, offsets = [700, 5, 1_300], [3, 0, 60]
    n = sum(lengths)
    series = np.repeat(np.arange(3), lengths)
    ordinals = np.concatenate([np.arange(o, o + k) for o, k in zip(offsets, lengths, strict=True)])
    values = rng.integers(-3, 4, size=n).astype(np.float64)  # many ties
    values[rng.random(n) < 0.2] = math.nan
    values[100:180] = math.nan  # whole fine buckets of NaN
    values[rng.random(n) < 0.05] = -0.0
    it = ordinals * 2
    it[400] = it[399]  # a re-logged iteration
    ep = ordinals // 50
    millis = 1_700_000_000_000 + ordinals * 7
    return series, ordinals, it, ep, values, millis


def test_coarser_buckets_equal_buckets_computed_from_the_points() -> None:
    """Folded from the finer level, a level's buckets are those computed from the points."""
    series, ordinals, it, ep, values, millis = _fold_case()
    fine = rollups.compute_buckets(series, ordinals, 8, it, ep, values, millis)
    for factor in (2, 8, 64):
        want = rollups.compute_buckets(series, ordinals, 8 * factor, it, ep, values, millis)
        got = rollups.coarser_buckets(fine, factor)
        assert sorted(got) == sorted(want)
        for name, column in want.items():
            assert got[name].dtype == column.dtype, name
            assert _bits(got[name]) == _bits(column), (factor, name)  # NaN and -0.0 too


@pytest.mark.parametrize("cut", [None, 1, 700])
def test_all_levels_fold_each_level_as_coarser_buckets_folds_it_alone(cut: int | None) -> None:
    """Every coarser level folded at once (an append's path) gives each level the buckets
    coarser_buckets gives it, one level after another (also for one point, one series)."""
    series, ordinals, it, ep, values, millis = (c[:cut] for c in _fold_case())
    fine = rollups.compute_buckets(series, ordinals, 8, it, ep, values, millis)
    sizes = (8, 16, 64, 512, 4096)
    stacked, levels = rollups.all_levels(fine, sizes)
    assert [s.start for s in levels[1:]] == [s.stop for s in levels[:-1]]
    assert levels[-1].stop == len(stacked["level"])
    for level, size in enumerate(sizes, start=1):
        want = rollups.coarser_buckets(fine, size // 8) if level > 1 else fine
        assert stacked["level"][levels[level - 1]].tolist() == [level] * len(want["series"])
        for name, column in want.items():
            got = stacked[name][levels[level - 1]]
            assert got.dtype == column.dtype, name
            assert _bits(got) == _bits(column), (level, name)


def _bits(column: np.ndarray) -> list[int]:
    return (column.view(np.uint64) if column.dtype == np.float64 else column).tolist()


def _stored_partial(rng: np.random.Generator, count: int, level: int) -> tuple:
    """A stored partial bucket as _stored_partials hands it: series 7, the level, then
    rollups.COLUMNS as stored (times after the first relative to it, as doubles; some NULL)."""
    it = [int(x) for x in rng.integers(0, 40, 4)]
    values = [float(x) for x in rng.choice([math.nan, -1.0, 0.5, 2.0, 3.0], 4)]
    times = [None if rng.random() < 0.2 else int(x) for x in rng.integers(1_000, 9_000, 4)]
    stored: dict = {"n": count % rollups.LEVEL_SIZES[level - 1], "bucket": 0}
    for i, part in enumerate(rollups.PARTS):
        stored.update({f"{part}_iteration": it[i], f"{part}_epoch": int(rng.integers(-1, 3)),
                       f"{part}_value": None if math.isnan(values[i]) else values[i],
                       f"{part}_time": times[i]})  # fmt: skip
    first = stored["first_time"]
    for name in rollups.RELATIVE_TIMES:
        stored[name] = None if first is None or stored[name] is None else stored[name] - first
    as_stored = [float(stored[c]) if c.endswith("_time") and stored[c] is not None else stored[c]
                 for c in rollups.COLUMNS]  # fmt: skip
    return (7, level, *as_stored)


@pytest.mark.parametrize("seed", range(40))
def test_a_lone_point_makes_the_rows_the_array_path_makes(seed: int) -> None:
    """A one-point append (synchronous log_metric) takes a plain-Python path; its buckets,
    merged with whatever partials are stored (those of levels not stored yet borrowed from a
    finer level), are those of the general path as the tails store them, the levels still not
    stored left out."""
    from types import SimpleNamespace

    from mltrail.store.sql.points import _Writes

    rng = np.random.default_rng(seed)
    count = int(rng.choice([0, 1, 63, 64, 100, 511, 4095, 70_000]))
    row = SimpleNamespace(id=7, count=count)
    value = float(rng.choice([math.nan, -2.0, 0.5, 2.5]))
    chunk = SeriesChunk("k", "train", np.array([int(rng.integers(0, 40))]),
                        np.array([int(rng.integers(-1, 3))]), np.array([value]),
                        np.array([1.0 + rng.random() * 10]))  # fmt: skip
    stored = {
        (7, level): _stored_partial(rng, count, level)
        for level, size in enumerate(rollups.LEVEL_SIZES, start=1)
        if count % size and rng.random() < 0.8
    }
    lone, arrays = _Writes([row], [chunk]), _Writes([row], [chunk])
    lone.add_lone_rollups(stored)
    arrays.add_array_rollups(stored)
    for sqlite in (False, True):
        made = lone.changed(sqlite)
        np.testing.assert_array_equal(made, arrays.changed(sqlite))
        assert made.shape[1] == rollups.stored_levels(count + 1)


@pytest.mark.parametrize("seconds", [0.0005, 0.0015, 0.0025, 1.7e9 + 0.0005, 9.999e12, -0.0025])
def test_a_lone_point_rounds_its_time_as_the_array_path_does(seconds: float) -> None:
    """A lone point's milliseconds, rounded without arrays, are the array path's (half to
    even) at ties and near the largest time a point may have."""
    from types import SimpleNamespace

    from mltrail.store.sql.points import _Writes

    row = SimpleNamespace(id=3, count=5)
    chunk = SeriesChunk("k", "train", np.array([5]), np.array([-1]), np.array([1.0]),
                        np.array([seconds]))  # fmt: skip
    lone, arrays = _Writes([row], [chunk]), _Writes([row], [chunk])
    lone.add_lone_rollups({})
    arrays.add_array_rollups({})
    np.testing.assert_array_equal(lone.changed(True), arrays.changed(True))
    first_time = 3 + rollups.COLUMNS.index("first_time")  # after series id, level and bucket
    assert lone.changed(True)[first_time, 0] == np.float64(np.round(seconds * 1000.0)).view(
        np.int64
    )


@pytest.mark.parametrize("epochs_back", [False, True])
def test_downsample_orders_by_iteration_then_epoch_ties_in_arrival_order(epochs_back: bool) -> None:
    """Picks re-logged at an iteration (with a lower epoch when ``epochs_back``) come out by
    (iteration, epoch), equal ones in the order picked, whichever sort finds it."""
    rng = np.random.default_rng(4)
    it = np.repeat(np.arange(40), 3)[rng.permutation(120)].astype(np.float64)
    ep = (10 - it // 10 - np.arange(120) % 2) if epochs_back else it // 10
    points = np.vstack([it, ep, rng.normal(size=120), np.arange(120.0)])
    got = rollups._finish((points[:2].astype(np.int64), points[2:]), 1000)
    want = points[:, np.lexsort((ep, it))]  # no two picks are the same point here
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_batch_buckets_made_in_slices_equal_one_call_on_every_point() -> None:
    """Series sliced together (a lone one-point series joined to a neighbour, a long series
    alone) give the buckets one compute_buckets call on the whole batch gives."""
    rng = np.random.default_rng(7)
    lengths, firsts = [1, 700, 3, 2_000, 1, 50, 1], [0, 130, 5, 64, 63, 0, 9]
    chunks_ = []
    for n in lengths:
        values = rng.normal(size=n)
        values[::7] = np.nan
        it = np.arange(n, dtype=np.int64)
        chunks_.append(SeriesChunk("k", "train", it, it % 3 - 1, values, rng.random(n) * 1e9))
    whole = rollups.batch_buckets(firsts, chunks_, 64, limit=10**9)
    series = np.repeat(np.arange(len(lengths)), lengths)
    ordinals = np.concatenate([np.arange(f, f + n) for f, n in zip(firsts, lengths, strict=True)])
    columns = [
        np.concatenate([getattr(c, a) for c in chunks_]) for a in ("iterations", "epochs", "values")
    ]
    millis = np.round(np.concatenate([c.times for c in chunks_]) * 1000.0).astype(np.int64)
    direct = rollups.compute_buckets(series, ordinals, 64, *columns, millis)
    for limit in (1, 2, 60, 800, 2_100):
        sliced = rollups.batch_buckets(firsts, chunks_, 64, limit=limit)
        for got in (whole, sliced):
            assert got.keys() == direct.keys()
            for name, column in direct.items():
                assert got[name].dtype == column.dtype
                np.testing.assert_array_equal(got[name], column, err_msg=name)
