"""Noise planes: a chunk's value planes that deflate cannot shrink go into stored deflate
blocks of the same zlib stream; every chunk still reads back bit for bit, and planes with
structure (few values, a ramp, a run of one byte) are deflated as before."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from mltrail.core.chunk_codec import encode_chunks, unpack_chunk
from mltrail.core.noise_planes import NOISE_FROM, mixed_stream, noise_planes
from mltrail.core.types import SeriesChunk

RNG = np.random.default_rng(17)


def _random_mantissas(n: int) -> np.ndarray:
    """Floats in [1, 2) with random mantissa bits: integer draws only, the same everywhere."""
    mantissas = RNG.integers(0, 2**52, n, dtype=np.int64)
    return ((0x3FF << 52) | mantissas).view(np.float64)


def _chunk(values: np.ndarray) -> SeriesChunk:
    n = len(values)
    times = 1_700_000_000.0 + np.arange(n, dtype=np.int64) // 7 / 1000
    return SeriesChunk("loss", "train", np.arange(n), np.zeros(n, np.int64), values, times)


def test_random_bytes_are_noise_and_structured_planes_are_not() -> None:
    n = 4 * NOISE_FROM
    planes = np.stack([
        RNG.integers(0, 256, n, dtype=np.uint8),  # noise
        (np.arange(n) % 256).astype(np.uint8),  # a ramp: every byte value, one difference
        RNG.integers(0, 16, n, dtype=np.uint8),  # few values
        np.repeat(RNG.integers(0, 256, n // 8, dtype=np.uint8), 8),  # runs of one byte
    ])  # fmt: skip
    starts, lengths = np.array([0, n // 2]), np.array([n // 2, n // 2])
    assert noise_planes(planes, starts, lengths).tolist() == [
        [True, True],
        [False, False],
        [False, False],
        [False, False],
    ]


def test_a_short_chunk_is_never_noise() -> None:
    planes = RNG.integers(0, 256, (1, NOISE_FROM - 1), dtype=np.uint8)
    found = noise_planes(planes, np.array([0]), np.array([NOISE_FROM - 1]))
    assert found.tolist() == [[False]]


@pytest.mark.parametrize(
    "noise",
    [[True, False, True], [False, True, False], [True, True, True], [False, False, True]],
)
def test_mixed_stream_inflates_to_the_rows_in_order(noise: list[bool]) -> None:
    rows = [RNG.integers(0, 256, 70_000, dtype=np.uint8).tobytes(),  # past one stored block
            bytes(1000), b"ab" * 5000]  # fmt: skip
    stream = mixed_stream(rows, noise, 1)
    inflater = zlib.decompressobj()
    assert inflater.decompress(stream) == b"".join(rows)
    assert inflater.eof and not inflater.unused_data


def test_a_chunk_of_noisy_values_reads_back_exactly_and_no_larger() -> None:
    values = _random_mantissas(3 * NOISE_FROM)
    data = encode_chunks([_chunk(values)])[0]
    iterations, _, got, _ = unpack_chunk(data, len(values), "chunk")
    assert np.array_equal(got.view(np.int64), values.view(np.int64))
    assert np.array_equal(iterations, np.arange(len(values)))
    # the low mantissa bytes are stored as they are (not deflated to a little more)
    low_planes = values.view(np.uint8).reshape(-1, 8).T[:6]
    assert np.ascontiguousarray(low_planes).tobytes() in data


def test_chunks_of_a_batch_each_get_their_own_planes() -> None:
    """A noisy series beside a ramp and a constant one, packed together: each reads back."""
    n = 2 * NOISE_FROM
    series = [_random_mantissas(n), np.arange(n, dtype=np.float64), np.full(n, 0.25)]
    packed = encode_chunks([_chunk(v) for v in series])
    for values, data in zip(series, packed, strict=True):
        got = unpack_chunk(data, n, "chunk")[2]
        assert np.array_equal(got.view(np.int64), values.view(np.int64))
