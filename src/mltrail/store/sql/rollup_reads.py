"""Rollup levels read back as arrays: complete buckets from their blocks
(:mod:`rollup_blocks`), the rest (the last block's buckets so far, and buckets stored before
migration 0014) from the series' tails (:mod:`rollup_tails`, one blob a series).

A chart read of a level fetches a few blobs and each series' tails, instead of a row per
bucket (a 100,000-point series at 2,000 points: 12 blobs and its tails, not 1,563 rows).

A level reads back as a :data:`Table`: n, iterations and epochs as exact int64 (past 2^53 too:
blocks keep every integer column exactly, rows are taken exactly when a column reaches 2^53),
values and times as float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, bindparam, select

from mltrail.store.sql import rollup_tails, rollups
from mltrail.store.sql.access import fetch_tuples
from mltrail.store.sql.rollup_blocks import (
    BLOCK_BUCKETS,
    COLUMNS,
    FIRST_IT,
    FIRST_TIME,
    FLOATS,
    INDEX,
    INTS,
    ITERATIONS,
    LAST_IT,
    SIZE_BITS,
    VALUES,
    WIDTH,
    decode_blocks,
    decode_columns,
    fields_of,
    read_heads,
    unrotate,
)
from mltrail.store.sql.tables import metric_rollup_blocks

# "bucket" and COLUMNS: "bucket", n, iterations and epochs int64, values and times float64,
# times absolute ms (NaN: none)
Table = dict[str, np.ndarray]


def _table(buckets: np.ndarray, ints: np.ndarray, floats: np.ndarray) -> Table:
    """A level's table from bucket numbers and the (INTS, buckets) and (FLOATS, buckets)
    arrays as stored, sorted by bucket, every time absolute."""
    order = None if np.all(buckets[1:] > buckets[:-1]) else np.argsort(buckets, kind="stable")
    if order is not None:
        buckets, ints, floats = buckets[order], ints[:, order], floats[:, order]
    out: Table = {"bucket": buckets}
    out.update({COLUMNS[j]: ints[i] for i, j in enumerate(INTS)})
    out.update({COLUMNS[j]: floats[i] for i, j in enumerate(FLOATS)})
    for name in rollups.RELATIVE_TIMES:
        out[name] = out[name] + out["first_time"]
    return out


def fetch_level(conn: Connection, level: int, series_ids: Sequence[int]) -> StoredLevel:
    """Every bucket of ``level`` of each series, as stored: one query for their blocks and
    one for their tails (in parts of 500 series: SQLite bounds a statement's parameters)."""
    blocks: list[tuple[Any, ...]] = []
    for start in range(0, len(series_ids), 500):
        params = {"level": level, "ids": list(series_ids[start : start + 500])}
        blocks += fetch_tuples(conn, _LEVEL_BLOCKS, params)
    tails = rollup_tails.fetch(conn, sorted(set(series_ids)))
    return StoredLevel(blocks, rollup_tails.level_arrays(tails, sorted(tails), level))


# built once: building the statements (and their cache keys) per read cost more than a chart
# read's two queries take to run
_b = metric_rollup_blocks.c
_LEVEL_BLOCKS = (
    select(_b.series_id, _b.block, _b.data)
    .where(_b.level == bindparam("level"), _b.series_id.in_(bindparam("ids", expanding=True)))
    .order_by(_b.series_id, _b.block)
)


class StoredLevel:
    """The buckets of a level of several series as :func:`fetch_level` found them, a column
    at a time (a read decodes only the columns it uses): :meth:`source` lists the blocks'
    buckets (``numbers``: series and block number of each block, by series, then block)
    followed by the tails' (``row_keys``: series and bucket of each, by series, then
    bucket; ``tails``: their :func:`rollup_tails.level_arrays`)."""

    def __init__(self, blocks: list[tuple[Any, ...]], tails: tuple[np.ndarray, np.ndarray]) -> None:
        self.numbers = np.array([row[:2] for row in blocks], dtype=np.int64).reshape(-1, 2)
        self._blocks = _Blocks([row[2] for row in blocks])
        self._ints, self._floats = tails
        self.row_keys = self._ints[:2]
        self._sources: dict[str, np.ndarray] = {}

    def source(self, name: str) -> np.ndarray:
        """Column ``name`` (``bucket`` or one of :data:`rollups.COLUMNS`) of the blocks'
        buckets followed by the rows': n, iterations and epochs int64, values and times
        float64, times absolute (ms)."""
        if name in self._sources:
            return self._sources[name]
        if name == "bucket":
            first = self.numbers[:, 1, None] * BLOCK_BUCKETS
            held = (first + np.arange(BLOCK_BUCKETS)).reshape(-1)
            found = np.concatenate((held, self._ints[1]))
        elif INDEX[name] in INTS:
            j = INDEX[name]
            found = np.concatenate((self._blocks.column(j), self._ints[2 + INTS.index(j)]))
        else:  # values from their bits, times (ms) as doubles
            j = INDEX[name]
            stored = self._blocks.column(j)
            stored = stored.view("<f8") if j in VALUES else stored
            found = np.concatenate((stored, self._floats[FLOATS.index(j)]), dtype=np.float64)
            if name in rollups.RELATIVE_TIMES:
                found += self.source("first_time")
        self._sources[name] = found
        return found

    def at(self, name: str, where: np.ndarray) -> np.ndarray:
        """``source(name).take(where)``, decoding only those buckets of a column not decoded
        yet (a read takes some columns only at the points it picks)."""
        j = INDEX.get(name)
        if name in self._sources or j is None or j in (FIRST_IT, FIRST_TIME):
            return self.source(name).take(where)
        held = self._blocks.held
        inside = where < held
        rows = where[~inside] - held
        if j in INTS:
            out = np.empty(len(where), np.int64)
            out[inside] = self._blocks.at(j, where[inside])
            out[~inside] = self._ints[2 + INTS.index(j)].take(rows)
            return out
        found = np.empty(len(where))
        stored = self._blocks.at(j, where[inside])
        found[inside] = stored.view("<f8") if j in VALUES else stored
        found[~inside] = self._floats[FLOATS.index(j)].take(rows)
        if name in rollups.RELATIVE_TIMES:
            found += self.at("first_time", where)
        return found


class _Blocks:
    """Blocks decoded a column at a time (:func:`decode_columns`' columns, each flat)."""

    def __init__(self, blobs: Sequence[bytes]) -> None:
        self._count = len(blobs)
        self._columns: dict[int, np.ndarray] = {}
        self._whole: np.ndarray | None = None
        heads = read_heads(blobs)
        if len(set(heads.widths)) > 1:  # blocks of several widths: decoded all at once
            self._whole = decode_columns(blobs)
            return
        self._widths = heads.widths[0] if blobs else bytes(WIDTH)
        self._bases, self._starts = heads.bases.view(np.uint64), heads.starts
        fields = fields_of(self._widths)
        self._records = None  # None: no field
        if fields:
            # slices of bytes, not memoryviews: a copy of a few hundred bytes costs less
            body = b"".join([blob[skip:] for blob, skip in zip(blobs, heads.skips, strict=True)])
            self._records = np.frombuffer(body, dtype=fields).reshape(-1, BLOCK_BUCKETS)

    @property
    def held(self) -> int:
        """How many buckets the blocks hold."""
        return self._count * BLOCK_BUCKETS

    def at(self, j: int, where: np.ndarray) -> np.ndarray:
        """``column(j).take(where)``: only those buckets decoded, unless the column is a
        running sum (first iteration and time) or decoded already."""
        if self._whole is not None or j in self._columns or j in (FIRST_IT, FIRST_TIME):
            return self.column(j).take(where)
        block, bucket = np.divmod(where, BLOCK_BUCKETS)
        found = self._bases[block, j]
        if self._widths[j] & SIZE_BITS and self._records is not None:
            found += self._records[f"c{j}"][block, bucket]  # uint64: wraps as column() does
        unrotate(found, self._widths[j])
        signed = found.view(np.int64)
        if j in ITERATIONS:
            signed += self.column(FIRST_IT).take(where)
        return signed

    def column(self, j: int) -> np.ndarray:
        """Column ``j`` of every bucket of the blocks in order, int64 (values as bits)."""
        if self._whole is not None:
            return self._whole[j].reshape(-1)
        if j in self._columns:
            return self._columns[j]
        out = np.empty((self._count, BLOCK_BUCKETS), np.uint64)
        if self._widths[j] & SIZE_BITS and self._records is not None:
            np.add(self._records[f"c{j}"], self._bases[:, j, None], out=out, casting="unsafe")
        else:
            out[:] = self._bases[:, j, None]
        unrotate(out, self._widths[j])
        signed = out.view(np.int64)
        if j in (FIRST_IT, FIRST_TIME):
            np.cumsum(signed, axis=1, out=signed)
            signed += self._starts[:, (FIRST_IT, FIRST_TIME).index(j), None]
        if j in ITERATIONS:
            signed += self.column(FIRST_IT).reshape(self._count, BLOCK_BUCKETS)
        self._columns[j] = signed.reshape(-1)
        return self._columns[j]


def _joined(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Table:
    if not found:
        empty = np.empty(0, np.int64)
        return _table(empty, np.empty((len(INTS), 0), np.int64), np.empty((len(FLOATS), 0)))
    buckets = np.concatenate([f[0] for f in found]).astype(np.int64)
    ints = np.concatenate([f[1] for f in found], axis=1)
    return _table(buckets, ints, np.concatenate([f[2] for f in found], axis=1))


def level_range(
    conn: Connection,
    series_id: int,
    level: int,
    bounds: tuple[int, int],
    span: tuple[int, int] | None = None,
) -> Table:
    """The buckets of ``level`` whose iterations overlap ``bounds`` (inclusive), within the
    bucket numbers ``span`` when given: the blocks overlapping them and the matching buckets
    of the series' tails."""
    lo, hi = bounds
    b = metric_rollup_blocks.c
    where = [b.series_id == series_id, b.level == level]
    where += [b.last_iteration >= lo, b.first_iteration <= hi]
    if span is not None:
        where += [b.block >= span[0] // BLOCK_BUCKETS, b.block <= span[1] // BLOCK_BUCKETS]
    found = []
    blocks = fetch_tuples(conn, select(b.block, b.data).where(and_(*where)))
    if blocks:
        ints, floats = decode_blocks([data for _, data in blocks])
        last, first = INTS.index(INDEX["last_iteration"]), INTS.index(FIRST_IT)
        for (block, _), i, f in zip(blocks, ints, floats, strict=True):
            buckets = np.arange(BLOCK_BUCKETS, dtype=np.int64) + block * BLOCK_BUCKETS
            keep = (i[last] >= lo) & (i[first] <= hi)
            if span is not None:
                keep &= (buckets >= span[0]) & (buckets <= span[1])
            found.append((buckets[keep], i[:, keep], f[:, keep]))
    ints, floats = rollup_tails.level_arrays(rollup_tails.fetch(conn, [series_id]), [series_id],
                                             level)  # fmt: skip
    buckets = ints[1]
    keep = (ints[2 + INTS.index(LAST_IT)] >= lo) & (ints[2 + INTS.index(FIRST_IT)] <= hi)
    if span is not None:
        keep &= (buckets >= span[0]) & (buckets <= span[1])
    if keep.any():
        found.append((buckets[keep], ints[2:, keep], floats[:, keep]))
    return _joined(found)
