"""Chunk formats: values a float32 holds exactly are stored as float32 bits (format 2, the
store's choice), everything else as float64 bits (format 1); a store's chunk of at least
DELTA_FROM points holds its values' differences (formats 4 and 3). Every format reads back
bit for bit; a format-1 chunk packed as older versions packed it stays readable."""

from __future__ import annotations

import importlib
import sqlite3
import struct
import zlib

import numpy as np
import pytest

from mltrail.core.chunk_codec import (
    DELTA_FROM,
    NARROW,
    NARROW_DELTA,
    WIDE_DELTA,
    decode_chunks,
    decode_many,
    encode_chunks,
    pack_chunks,
    unpack_chunk,
)
from mltrail.core.errors import ValidationError
from mltrail.core.noise_planes import stored_stream
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore

DELTA_MIGRATION = importlib.import_module(
    "mltrail.store.sql.migrations.versions.0021_chunk_delta_formats"
)
F32_SPECIAL = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(np.float32).max, np.finfo(np.float32).tiny,
     np.finfo(np.float32).smallest_subnormal, -np.finfo(np.float32).eps],
    dtype=np.float32,
).astype(np.float64)  # fmt: skip
# float64 values no float32 holds bit for bit: a NaN payload below float32's, a value past
# float32's range, one needing float64's mantissa, a float64 subnormal
F64_ONLY = np.array(
    [0x7FF8000000000001, 0x47EFFFFFE0000001, 0x3FB999999999999A, 0x0000000000000001],
    dtype=np.int64,
).view(np.float64)


def _chunk(values: np.ndarray, start: int = 0) -> SeriesChunk:
    n = len(values)
    it = np.arange(start, start + n, dtype=np.int64)
    times = 1_764_331_200.0 + it * 0.25
    return SeriesChunk("loss", "train", it, np.full(n, -1, np.int64), values, times)


def _values(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    walk = np.cumsum(rng.normal(0.0, 0.01, n)) + rng.uniform(0.5, 3.0)
    if kind == "f32":
        out = walk.astype(np.float32).astype(np.float64)
    elif kind == "f64":
        out = walk
    else:  # float32 values with one float64 among them
        out = walk.astype(np.float32).astype(np.float64)
        out[rng.integers(n)] = F64_ONLY[rng.integers(len(F64_ONLY))]
    specials = rng.random(n) < 0.2
    out[specials] = rng.choice(F32_SPECIAL, int(specials.sum()))
    return out


def _bits(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).view(np.int64)


def _f32_exact(values: np.ndarray) -> bool:
    narrow = values.astype(np.float32).astype(np.float64)
    return bool(np.array_equal(_bits(narrow), _bits(values)))


@pytest.mark.parametrize("seed", range(12))
def test_chunks_of_any_values_round_trip_bit_for_bit_in_every_read(seed):
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["f32", "f64", "mixed"], int(rng.integers(1, 8)))
    values = [_values(rng, str(kind), int(rng.integers(1, 300))) for kind in kinds]
    chunks, at = [], 0
    for v in values:
        chunks.append(_chunk(v, at))
        at += len(v)
    packed = encode_chunks(chunks, stored_below=int(rng.integers(0, 200)), narrow=True)
    rows = [(data, len(c)) for data, c in zip(packed, chunks, strict=True)]
    want = np.concatenate(values)
    for read in (decode_chunks, decode_many):
        it, _ep, v, times = read(rows)
        assert np.array_equal(_bits(v), _bits(want))
        assert np.array_equal(it, np.arange(at))
        assert np.array_equal(times, 1_764_331_200.0 + np.arange(at) * 0.25)
    for (data, n), v in zip(rows, values, strict=True):
        assert np.array_equal(_bits(unpack_chunk(data, n, "chunk")[2]), _bits(v))
        narrow = n > 1 and _f32_exact(v)
        if n >= DELTA_FROM:
            assert data[0] == (NARROW_DELTA if narrow else WIDE_DELTA), (n, v[:5])
        else:
            assert data[0] == (NARROW if narrow else 1), (n, v[:5])


@pytest.mark.parametrize("seed", range(4))
def test_a_float32_random_walk_packs_smaller_as_float32_bits(seed):
    # format 1 already keeps a widened float32's three zero low bytes as constant planes;
    # format 2 saves the fourth, which holds 3 of the mantissa's bits (about 0.2 B a point);
    # a chunk this long is packed as format 2's differences (format 4)
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(0.0, 0.01, 4096)).astype(np.float32).astype(np.float64)
    wide, narrow = (encode_chunks([_chunk(values)], narrow=flag)[0] for flag in (False, True))
    assert (wide[0], narrow[0]) == (1, NARROW_DELTA)
    assert len(narrow) < len(wide)


@pytest.mark.parametrize("seed", range(4))
def test_a_random_walk_packs_smaller_as_differences(seed):
    # a step of 0.01 is ~10^5 units in a float32's last place: the differences' high bytes are
    # near zero, where the values' own bytes are not (float32: ~2.65 B a value, not ~2.95)
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0.0, 0.01, 4096)) + 1.5
    for values, plain, delta, gain in ((walk.astype(np.float32).astype(np.float64), NARROW,
                                        NARROW_DELTA, 0.92), (walk, 1, WIDE_DELTA, 0.98)):  # fmt: skip
        short = encode_chunks([_chunk(values[: DELTA_FROM - 1])], narrow=True)[0]
        long = encode_chunks([_chunk(values)], narrow=True)[0]
        assert (short[0], long[0]) == (plain, delta)
        undone = DELTA_MIGRATION.without_deltas(long, len(values))  # the same chunk, plain
        assert undone[0] == plain
        assert np.array_equal(_bits(decode_chunks([(undone, len(values))])[2]), _bits(values))
        assert len(long) < gain * len(undone)


def _bits_chunk(bits: np.ndarray, start: int) -> SeriesChunk:
    n = len(bits)
    it = start + np.arange(n, dtype=np.int64) * 3
    epochs = (it - start) // 7
    return SeriesChunk("m", "train", it, epochs, bits.view(np.float64), 1.7e9 + np.arange(n))


@pytest.mark.parametrize("narrow", [False, True])
def test_differences_wrap_exactly_across_every_special_value(narrow):
    # neighbours as far apart as bits go (+NaN next to -inf, -0.0 next to the largest
    # float32, subnormals of both widths): the differences wrap at 32 or 64 bits and sum back;
    # iterations past 2^53 (not a double's whole numbers) keep every unit
    f32 = F32_SPECIAL.view(np.int64)
    pool = np.concatenate([f32, F64_ONLY.view(np.int64)]) if not narrow else f32
    rng = np.random.default_rng(11)
    bits = rng.choice(pool, 200)
    bits[:4] = pool[[4, 3, 1, 5]] if narrow else [-1, 2**63 - 1, -(2**63), 1]
    chunk = _bits_chunk(bits.astype(np.int64), 2**62 + 5)
    (data,) = encode_chunks([chunk], narrow=True)
    assert data[0] == (NARROW_DELTA if narrow else WIDE_DELTA)
    for it, ep, v, _t in (decode_chunks([(data, 200)]), decode_many([(data, 200)]),
                          unpack_chunk(data, 200, "chunk")):  # fmt: skip
        assert np.array_equal(v.view(np.int64), bits)
        assert np.array_equal(it, chunk.iterations) and np.array_equal(ep, chunk.epochs)


def test_a_narrow_delta_chunk_with_bits_past_a_float32_is_refused_from_outside():
    values = np.cumsum(np.full(40, 0.25))
    (data,) = encode_chunks([_chunk(values)], narrow=True)
    assert data[0] == NARROW_DELTA
    forged = bytes([1]) + data[1:]  # planes as format 1 would read them: fine
    unpack_chunk(forged, 40, "chunk")
    wide = encode_chunks([_chunk(values + 0.1)], narrow=True)[0]  # WIDE_DELTA, high planes busy
    assert wide[0] == WIDE_DELTA
    with pytest.raises(ValidationError, match="bits past a float32"):
        unpack_chunk(bytes([NARROW_DELTA]) + wide[1:], 40, "chunk")


def test_the_sdk_packs_format_1_which_every_server_reads():
    values = np.arange(50, dtype=np.float32).astype(np.float64) / 4
    (chunk,) = pack_chunks([_chunk(values)])
    assert chunk.packed is not None and chunk.packed[0] == 1


def _format_1(values: np.ndarray, first_iteration: int, first_ms: int) -> bytes:
    """A chunk as format 1 lays it out, built here from its description (every byte plane
    deflated, none kept in the header): regular deltas of 1 iteration and 250 ms, no epoch."""
    n = len(values)
    table = np.empty((4, n), dtype="<i8")
    table[0], table[1], table[3] = 1, -1, 250
    table[2] = values.view("<i8")
    planes = table.view(np.uint8).reshape(4, n, 8).transpose(0, 2, 1).reshape(32, n)
    header = struct.pack("<BqqI", 1, first_iteration, first_ms, 0)
    return header + zlib.compress(planes.tobytes(), 6)


def test_a_format_1_chunk_written_before_format_2_reads_back_through_the_store(tmp_path):
    rng = np.random.default_rng(7)
    values = _values(rng, "f32", 100)  # float32 values: format 2 now, format 1 then
    old = _format_1(values, 0, 1_764_331_200_000)
    assert np.array_equal(_bits(decode_chunks([(old, 100)])[2]), _bits(values))
    store = SqlStore.open(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        p = store.create_project("old-format")
        e = store.create_experiment(p.id)
        store.append_points(p.id, e.experiment_id, MetricBatch("c", 0, (_chunk(values),)))
        with sqlite3.connect(tmp_path / "old.db") as conn:  # the chunk as an older version wrote it
            assert conn.execute("UPDATE metric_chunks SET data = ?", (old,)).rowcount == 1
        got = store.read_series(p.id, e.experiment_id, "loss", "train")
    finally:
        store.close()
    assert np.array_equal(_bits(got.values), _bits(values))
    assert np.array_equal(got.iterations, np.arange(100))


@pytest.mark.parametrize("fmt", [0, 5, 9, 255])
def test_a_stored_chunk_of_a_format_this_version_does_not_know_fails_its_read(fmt: int) -> None:
    """A later version's format (a rolling upgrade's newer process, a newer backup) must fail
    the read loudly: read as deltas (any format past 2 was) its values came out as other numbers."""
    values = (np.cumsum(np.linspace(0.1, 0.2, 40)) + 1.0).astype(np.float32).astype(np.float64)
    it = np.arange(40, dtype=np.int64)
    data = encode_chunks([SeriesChunk("k", "train", it, it * 0, values, 1.7e9 + it)], narrow=True)[
        0
    ]
    future = bytes([fmt]) + data[1:]
    for read in (decode_chunks, decode_many):
        with pytest.raises(ValueError, match=f"format {fmt}"):
            read([(future, 40)])


@pytest.mark.parametrize("size", [0, 1, 50, 1_600, 16_352, 65_000, 65_001, 200_000])
def test_a_stored_stream_is_zlibs_own_at_level_0(size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    assert stored_stream(data) == zlib.compress(data, 0)
    assert zlib.decompress(stored_stream(data)) == data
