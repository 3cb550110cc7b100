"""The byte-plane forms of a rollup tails blob's parts (:mod:`rollup_tails`): a (KEYS + WIDTH,
buckets) int64 table as its byte planes (each column's 8, lowest first), raw (the planes zero in
every bucket left out) or packed (the planes constant over the part kept once, the rest
deflated). Pure numpy and zlib."""

from __future__ import annotations

import zlib

import numpy as np

from mltrail.store.sql.rollup_blocks import WIDTH

KEYS = 2  # level and bucket lead a blob's table
PLANES = (KEYS + WIDTH) * 8  # a table's byte planes
MASK_BYTES = PLANES // 8
EMPTY = np.empty((KEYS + WIDTH, 0), np.int64)


def raw_many(table: np.ndarray, bounds: np.ndarray) -> list[bytes]:
    """The parts of a table (``bounds`` as :func:`rollup_tails.encode_tails`'s), a few buckets each,
    without deflate: a bit a byte plane saying which are zero in every bucket of the part (left
    out), then the others' bytes."""
    planes = byte_planes(table)
    parts = len(bounds) - 1
    full = np.flatnonzero(bounds[1:] > bounds[:-1])
    zero = np.ones((PLANES, parts), dtype=bool)
    if len(full):
        zero[:, full] = ~np.logical_or.reduceat(planes != 0, bounds[full], axis=1)
    masks = np.packbits(zero, axis=0).T.tobytes()
    edges = bounds.tolist()
    return [
        masks[k * MASK_BYTES : (k + 1) * MASK_BYTES]
        + planes[~zero[:, k], edges[k] : edges[k + 1]].tobytes()
        for k in range(parts)
    ]


def byte_planes(table: np.ndarray) -> np.ndarray:
    """The (PLANES, buckets) byte planes of a (KEYS + WIDTH, buckets) int64 table (each
    column's 8, lowest first): :func:`from_byte_planes` undoes it."""
    n = table.shape[1]
    bits = np.ascontiguousarray(table, dtype="<i8").view(np.uint8)
    return bits.reshape(KEYS + WIDTH, n, 8).transpose(0, 2, 1).reshape(PLANES, n)


def unraw(data: bytes, at: int, n: int) -> tuple[np.ndarray, int]:
    """The table :func:`raw_many` wrote at ``at`` of ``data`` (``n`` buckets), and where it ends."""
    zero = mask(data, at)
    kept = PLANES - int(zero.sum())
    planes = np.zeros((PLANES, n), np.uint8)
    body = np.frombuffer(data, np.uint8, count=kept * n, offset=at + MASK_BYTES)
    planes[~zero] = body.reshape(kept, n)
    return from_byte_planes(planes, n), at + MASK_BYTES + kept * n


def mask(data: bytes, at: int) -> np.ndarray:
    mask = np.frombuffer(data, dtype=np.uint8, count=MASK_BYTES, offset=at)
    return np.unpackbits(mask, count=PLANES).astype(bool)


def from_byte_planes(planes: np.ndarray, n: int) -> np.ndarray:
    table = np.ascontiguousarray(planes.reshape(KEYS + WIDTH, 8, n).transpose(0, 2, 1))
    return table.view("<i8").reshape(KEYS + WIDTH, n)


def pack_many(table: np.ndarray, bounds: np.ndarray) -> list[bytes]:
    """The packed forms of the parts of a (KEYS + WIDTH, buckets) int64 table, part ``k``
    its buckets ``bounds[k]:bounds[k + 1]`` (empty for none): a bit a byte plane (:data:`PLANES`,
    each column's 8, lowest first) saying which are constant over the part (kept once), the
    others whole, deflated raw, parts one after another by one compressor flushed whole
    between them (a deflate's setup and its buffers once an append: they cost more than the
    few hundred bytes it packs a series)."""
    planes = byte_planes(table)
    full = np.flatnonzero(bounds[1:] > bounds[:-1])  # the parts with a bucket
    same = np.zeros((PLANES, len(bounds) - 1), dtype=bool)
    if len(full):
        starts = bounds[full]
        low, high = (f.reduceat(planes, starts, axis=1) for f in (np.minimum, np.maximum))
        same[:, full] = low == high
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15, 2)  # a small hash: cleared a part
    out = []
    for k in range(len(bounds) - 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if lo == hi:
            out.append(b"")
            continue
        const = same[:, k]
        raw = planes[const, lo].tobytes() + planes[~const, lo:hi].tobytes()
        packed = deflate.compress(raw) + deflate.flush(zlib.Z_FULL_FLUSH)
        out.append(np.packbits(const).tobytes() + packed)
    return out


def unpack(data: bytes, n: int) -> np.ndarray:
    """The ``n`` buckets of a packed part (:func:`pack_many`)."""
    if not n:
        return EMPTY
    const = mask(data, 0)
    raw = np.frombuffer(zlib.decompressobj(-15).decompress(data[MASK_BYTES:]), dtype=np.uint8)
    planes = np.empty((PLANES, n), np.uint8)
    kept = int(const.sum())
    planes[const] = raw[:kept, None]
    planes[~const] = raw[kept:].reshape(PLANES - kept, n)
    return from_byte_planes(planes, n)


def raw_part(buckets: np.ndarray) -> bytes:
    """:func:`raw_many`'s part of a (buckets, KEYS + WIDTH) int64 array (one part: a few
    numpy calls instead of its dozen)."""
    planes = buckets.view(np.uint8).reshape(len(buckets), PLANES).T
    kept = planes.any(axis=1)
    return np.packbits(~kept).tobytes() + planes[kept].tobytes()
