"""Chunk formats: values a float32 holds exactly are stored as float32 bits (format 2, the
store's choice), everything else as float64 bits (format 1), and every format reads back
bit for bit; a format-1 chunk packed as older versions packed it stays readable."""

from __future__ import annotations

import sqlite3
import struct
import zlib

import numpy as np
import pytest

from mltrail.core.chunk_codec import (
    NARROW,
    decode_chunks,
    decode_many,
    encode_chunks,
    pack_chunks,
    unpack_chunk,
)
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore

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
        assert data[0] == (NARROW if narrow else 1), (n, v[:5])


@pytest.mark.parametrize("seed", range(4))
def test_a_float32_random_walk_packs_smaller_as_float32_bits(seed):
    # format 1 already keeps a widened float32's three zero low bytes as constant planes;
    # format 2 saves the fourth, which holds 3 of the mantissa's bits (about 0.2 B a point)
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(0.0, 0.01, 4096)).astype(np.float32).astype(np.float64)
    wide, narrow = (encode_chunks([_chunk(values)], narrow=flag)[0] for flag in (False, True))
    assert (wide[0], narrow[0]) == (1, NARROW)
    assert len(narrow) < len(wide)


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
