"""The rollup buckets of a series not sealed in a block yet (the last block's buckets so far of
each level, its partial last bucket included): one row per series in ``metric_rollup_tails``,
its buckets packed in one blob (migration 0025; a row per bucket before, ~0.25 B a point of a
5,000-point series flushed every 10 iterations).

A blob holds a (:data:`KEYS` + WIDTH, buckets) int64 table: level, bucket, then
:data:`rollups.COLUMNS` as a row held them (times after the first relative; values and times as
their float64 bits, NULL as NaN), by level, then bucket. Its byte planes (each column's 8,
lowest first) are kept whole, but those the same in every bucket, kept once: a header (format
1, buckets: ``<BI``), a bit a plane saying which are constant (``np.packbits``), then raw
deflate of the constant planes' bytes followed by the other planes'. An append reads the blobs
of its series once (:func:`fetch`), takes the partials it merges into and the buckets of the
blocks it seals from them, and writes each series' blob again (:func:`write`), all of them
deflated by one compressor; a read decodes those of its series and keeps the level it reads.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, select

from mltrail.store.sql.access import fetch_tuples
from mltrail.store.sql.engine import Database
from mltrail.store.sql.rollup_blocks import BIG, BLOCK_BUCKETS, FLOATS, INTS, VALUES, WIDTH
from mltrail.store.sql.tables import metric_rollup_tails

_FORMAT = 1
KEYS = 2  # level and bucket lead a blob's table
PLANES = (KEYS + WIDTH) * 8  # a table's byte planes
_HEAD = struct.Struct("<BI")  # format, buckets; then a bit a plane: constant (kept once)
_MASK_BYTES = PLANES // 8
_FLOAT_AT = np.array(FLOATS) + KEYS  # the table's rows held as float64 bits
_INT_AT = np.array([*range(KEYS), *(j + KEYS for j in INTS)])
_NAN = np.array(np.nan).view(np.int64)  # NULL (and NaN) as stored
EMPTY = np.empty((KEYS + WIDTH, 0), np.int64)
_LEVEL, _BUCKET = 0, 1


def encode(table: np.ndarray) -> bytes:
    """A blob of a (KEYS + WIDTH, buckets) int64 table."""
    return encode_many(table, np.array([0, table.shape[1]]), [0])[0]


def encode_many(table: np.ndarray, bounds: np.ndarray, picked: Sequence[int]) -> list[bytes]:
    """The blobs of the ``picked`` parts of a (KEYS + WIDTH, buckets) int64 table, part ``k``
    its buckets ``bounds[k]:bounds[k + 1]``: the byte planes (:data:`PLANES`, each column's
    8, lowest first) constant over a part kept once, the others whole, deflated raw, parts
    one after another by one compressor flushed whole between them (a deflate's setup and
    its buffers once an append: they cost more than the few hundred bytes it packs a
    series)."""
    n = table.shape[1]
    bits = np.ascontiguousarray(table, dtype="<i8").view(np.uint8)
    planes = bits.reshape(KEYS + WIDTH, n, 8).transpose(0, 2, 1).reshape(PLANES, n)
    full = np.flatnonzero(bounds[1:] > bounds[:-1])  # the parts with a bucket
    same = np.zeros((PLANES, len(bounds) - 1), dtype=bool)
    if len(full):
        starts = bounds[full]
        low, high = (f.reduceat(planes, starts, axis=1) for f in (np.minimum, np.maximum))
        same[:, full] = low == high
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15, 2)  # a small hash: cleared a part
    out = []
    for k in picked:
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if lo == hi:
            out.append(_HEAD.pack(_FORMAT, 0) + bytes(_MASK_BYTES))
            continue
        const = same[:, k]
        raw = planes[const, lo].tobytes() + planes[~const, lo:hi].tobytes()
        packed = deflate.compress(raw) + deflate.flush(zlib.Z_FULL_FLUSH)
        out.append(_HEAD.pack(_FORMAT, hi - lo) + np.packbits(const).tobytes() + packed)
    return out


def decode(data: bytes) -> np.ndarray:
    """The (KEYS + WIDTH, buckets) int64 table of a blob.

    Raises:
        ValueError: a format this version does not read.
    """
    form, n = _HEAD.unpack_from(data)
    if form != _FORMAT:
        raise ValueError(f"rollup tails of format {form}, which this version does not read")
    at = _HEAD.size + _MASK_BYTES
    mask = np.frombuffer(data, dtype=np.uint8, count=_MASK_BYTES, offset=_HEAD.size)
    const = np.unpackbits(mask, count=PLANES).astype(bool)
    raw = np.frombuffer(zlib.decompressobj(-15).decompress(data[at:]), dtype=np.uint8)
    planes = np.empty((PLANES, n), np.uint8)
    kept = int(const.sum())
    planes[const] = raw[:kept, None]
    planes[~const] = raw[kept:].reshape(PLANES - kept, n)
    table = np.ascontiguousarray(planes.reshape(KEYS + WIDTH, 8, n).transpose(0, 2, 1))
    return table.view("<i8").reshape(KEYS + WIDTH, n)


def fetch(conn: Connection, series_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Each series' table (those with a blob), one query per 500 series (SQLite bounds a
    statement's parameters)."""
    found: dict[int, np.ndarray] = {}
    ids = list(series_ids)
    for start in range(0, len(ids), 500):
        for series_id, data in fetch_tuples(conn, _FETCH, {"ids": ids[start : start + 500]}):
            found[series_id] = decode(data)
    return found


_t = metric_rollup_tails.c
_FETCH = select(_t.series_id, _t.data).where(_t.series_id.in_(bindparam("ids", expanding=True)))


def from_rows(rows: Sequence[Sequence[Any]], sqlite: bool, lead: int = KEYS) -> np.ndarray:
    """The (lead + WIDTH, rows) table of rows of ``lead`` integer keys (level and bucket), then
    :data:`rollups.COLUMNS` (values and times float, None for NULL; integers exact past 2^53
    too), as the database keeps them: ``sqlite`` keeps no -0.0."""
    floats = np.array(rows, dtype=np.float64).reshape(-1, lead + WIDTH).T
    table = np.empty(floats.shape, np.int64)
    float_at = np.array(FLOATS) + lead
    values = floats[float_at]
    if sqlite:
        values[: len(VALUES)] += 0.0  # -0.0 + 0.0 is 0.0
    values[np.isnan(values)] = np.nan
    table[float_at] = values.view(np.int64)
    int_at = np.array([*range(lead), *(j + lead for j in INTS)])
    exact = floats[int_at]
    table[int_at] = exact.astype(np.int64)
    if len(rows) and np.abs(exact).max() >= BIG:
        for i in np.flatnonzero(np.abs(exact).max(axis=1) >= BIG).tolist():
            at = int(int_at[i])
            table[at] = np.array([row[at] for row in rows], dtype=np.int64)
    return table


def as_rows(table: np.ndarray) -> list[tuple[Any, ...]]:
    """The rows of a table: (level, bucket, *COLUMNS), integers as ints, values and times as
    floats (None for NULL), as a row of ``metric_rollups`` read back."""
    columns: list[list[Any]] = [[]] * (KEYS + WIDTH)
    for at in _INT_AT.tolist():
        columns[at] = table[at].tolist()
    floats = table[_FLOAT_AT].view(np.float64)
    for at, column in zip(_FLOAT_AT.tolist(), floats, strict=True):
        columns[at] = [None if v != v else v for v in column.tolist()]
    return list(zip(*columns, strict=True))


def of_level(table: np.ndarray, level: int) -> np.ndarray:
    """The buckets of ``level`` of a table (its columns)."""
    return table[:, table[_LEVEL] == level]


def level_arrays(
    tables: dict[int, np.ndarray], series_ids: Sequence[int], level: int
) -> tuple[np.ndarray, np.ndarray]:
    """The buckets of ``level`` of each series (in ``series_ids`` order, then by bucket) as the
    int64 array of series id, bucket and :data:`INTS` (exact) and the float64 array of
    :data:`FLOATS` (NULL: NaN), times as stored."""
    parts = [(s, of_level(tables[s], level)) for s in series_ids if s in tables]
    parts = [(s, t) for s, t in parts if t.shape[1]]
    if not parts:
        return np.empty((KEYS + len(INTS), 0), np.int64), np.empty((len(FLOATS), 0))
    joined = np.concatenate([t for _, t in parts], axis=1)
    owners = np.concatenate([np.full(t.shape[1], s, np.int64) for s, t in parts])
    ints = np.vstack([owners, joined[_INT_AT[1:]]])
    return ints, joined[_FLOAT_AT].view(np.float64)


def write(
    conn: Connection,
    db: Database,
    stored: dict[int, np.ndarray],
    series_ids: np.ndarray,
    changed: np.ndarray,
    sealed: set[tuple[int, int, int]],
) -> None:
    """Write the tails of ``series_ids`` over ``stored`` (as :func:`fetch` found them):
    ``changed`` is a (1 + KEYS + WIDTH, buckets) table led by the series id of the buckets an
    append made or merged into (each whole), which replace the stored ones of their keys; the
    buckets of ``sealed`` blocks (series id, level, block) are left out. One update for the
    series with a blob, one insert for the others."""
    owners = np.unique(series_ids)
    old = [(s, stored[s]) for s in owners.tolist() if s in stored]
    joined = np.concatenate(
        [*(np.vstack([np.full(t.shape[1], s, np.int64), t]) for s, t in old), changed], axis=1
    )
    # by series, level, bucket; a changed bucket (after the stored ones) last of its key
    order = np.lexsort((joined[1 + _BUCKET], joined[1 + _LEVEL], joined[0]))
    joined = joined[:, order]
    keys = joined[: 1 + KEYS]
    keep = np.ones(joined.shape[1], dtype=bool)
    keep[:-1] = (keys[:, 1:] != keys[:, :-1]).any(axis=0)
    if sealed:
        blocks = (keys[2] // BLOCK_BUCKETS).tolist()
        trios = zip(keys[0].tolist(), keys[1].tolist(), blocks, strict=True)
        keep &= np.fromiter((t not in sealed for t in trios), bool, count=len(keep))
    joined = joined[:, keep]
    bounds = np.append(np.searchsorted(joined[0], owners, side="left"), joined.shape[1])
    blobs = encode_many(joined[1:], bounds, range(len(owners)))
    updated: list[tuple[Any, ...]] = []
    inserted: list[tuple[Any, ...]] = []
    for s, data in zip(owners.tolist(), blobs, strict=True):
        if s in stored:
            updated.append((data, s))
        else:
            inserted.append((s, data))
    db.update_rows(conn, metric_rollup_tails, ["data"], ("series_id",), updated)
    db.insert_rows(conn, metric_rollup_tails, ["series_id", "data"], inserted)
