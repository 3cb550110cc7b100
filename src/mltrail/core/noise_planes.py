"""Byte planes that deflate cannot shrink, kept in stored deflate blocks instead.

A chunk's value planes (:mod:`mltrail.core.chunk_codec`) hold a float64's bytes; the low
mantissa bytes of a measured value (a loss, an accuracy) are noise, and deflating noise at
level 1 cost ~15 ns a byte to come out 0.1% larger (zlib falls back to stored blocks after
the search): six such planes were most of the SDK's packing, ~90 of ~150 ns a point. Such a
plane now goes into a stored block (a copy, ~1 ns a byte; an inflater copies it back), the
others are deflated as before, all in one zlib stream: every reader of the format inflates it
as it did.

Which planes are noise is told from a sample of each, without deflating it: four runs of
:data:`RUN` bytes spread over the chunk, among whose bytes, and among whose differences
within a run, at most :data:`MAX_PAIRS` pairs are equal (512 uniform bytes make ~511 such
pairs, give or take 23). A plane of fewer or uneven values (a float's low byte that takes 7
bits in some values: deflated to 0.97 of its size), or of slowly moving or repeating ones (a
counter's low byte: a ramp, one difference), makes more and is deflated as before. Integer
counting only: the same bytes on every machine.

A chunk kept undeflated (small ones, until compaction merges them) is one stored block in a
zlib stream: :func:`stored_stream` writes zlib's own bytes without zlib's set-up for a stream.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from itertools import groupby

import numpy as np

NOISE_FROM = 1024  # a chunk of fewer points is deflated whole, as before (the check costs)
RUNS, RUN = 4, 128  # the sample: four runs of 128 bytes, spread over the chunk
MAX_PAIRS = 600  # equal pairs among the 512 bytes sampled (and their 508 differences)
_STORED_MAX = 65_535  # the most bytes one stored block holds
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, fastest (as zlib.compress(..., 1) writes)
_STORED_HEAD = struct.Struct("<BHH")  # final-block bit and type 00, length, its complement
_ONE_BLOCK_MAX = 65_000  # zlib.compress(data, 0) cuts a longer input into several blocks


def noise_planes(planes: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Which of ``planes`` (rows of bytes, all chunks' side by side) are noise in each chunk
    (starting at ``starts``, of ``lengths`` points): a bool array (rows, chunks), False for
    a chunk shorter than :data:`NOISE_FROM`."""
    rows, chunks = planes.shape[0], len(starts)
    out = np.zeros((rows, chunks), dtype=bool)
    long = np.flatnonzero(lengths >= NOISE_FROM)
    if not len(long) or not rows:
        return out
    # each long chunk's runs: at its start, its end and evenly between
    spread = (lengths[long] - RUN)[:, None] * np.arange(RUNS) // (RUNS - 1)
    at = (starts[long][:, None] + spread)[:, :, None] + np.arange(RUN)
    sample = planes[:, at.ravel()].reshape(rows * len(long), RUNS, RUN)
    steps = np.diff(sample, axis=2)  # uint8: wraps, as a byte's difference does
    noisy = (_equal_pairs(sample) <= MAX_PAIRS) & (_equal_pairs(steps) <= MAX_PAIRS)
    out[:, long] = noisy.reshape(rows, len(long))
    return out


def _equal_pairs(sample: np.ndarray) -> np.ndarray:
    """Pairs of equal bytes in each row of ``sample`` (rows, ...), all rows counted at once."""
    flat = sample.reshape(len(sample), -1)
    keys = flat + (np.arange(len(flat), dtype=np.intp) * 256)[:, None]
    seen = np.bincount(keys.ravel(), minlength=len(flat) * 256).reshape(len(flat), 256)
    return (seen * (seen - 1)).sum(axis=1) // 2


def mixed_stream(rows: Sequence[bytes], noise: Sequence[bool], level: int) -> bytes:
    """One zlib stream of ``rows`` in order: the noise ones in stored blocks, each run of the
    others deflated at ``level`` by a deflater of its own (no match reaches back across a
    stored block: the deflater never saw those bytes)."""
    out = [_ZLIB_HEADER]
    adler = 1
    runs = [(is_noise, b"".join(data for data, _ in run))
            for is_noise, run in groupby(zip(rows, noise, strict=True), key=lambda r: r[1])]  # fmt: skip
    for index, (is_noise, data) in enumerate(runs):
        adler = zlib.adler32(data, adler)
        last = index == len(runs) - 1
        if is_noise:
            out.extend(_stored_blocks(data, last))
            continue
        deflater = zlib.compressobj(level, zlib.DEFLATED, -15)  # raw: no header of its own
        out.append(deflater.compress(data))
        out.append(deflater.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH))
    out.append(adler.to_bytes(4, "big"))
    return b"".join(out)


def stored_stream(data: bytes) -> bytes:
    """``zlib.compress(data, 0)``, the same bytes: the stream's header, one final stored block
    and the Adler-32 of ``data``, without zlib's set-up for a stream (it zeroes a 128 KiB hash
    table first: 70,000 instructions a chunk of an append's 20, for a few hundred bytes)."""
    if len(data) > _ONE_BLOCK_MAX:
        return zlib.compress(data, 0)
    head = _STORED_HEAD.pack(1, len(data), len(data) ^ 0xFFFF)
    return b"".join((_ZLIB_HEADER, head, data, zlib.adler32(data).to_bytes(4, "big")))


def _stored_blocks(data: bytes, last: bool) -> list[bytes]:
    """``data`` as stored deflate blocks (byte-aligned: after a header or a sync flush), the
    last of them final when ``last``."""
    view = memoryview(data)
    blocks = []
    for start in range(0, len(data), _STORED_MAX):
        piece = view[start : start + _STORED_MAX]
        final = last and start + _STORED_MAX >= len(data)
        blocks.append(_STORED_HEAD.pack(final, len(piece), len(piece) ^ 0xFFFF))
        blocks.append(bytes(piece))
    return blocks
