"""Rollup levels read as arrays: complete buckets packed :data:`BLOCK_BUCKETS` at a time in
``metric_rollup_blocks``, the rest (the last block's buckets so far, and buckets stored before
migration 0014) one row each in ``metric_rollups``.

A chart read of a level fetches a few blobs and at most a block's worth of rows, instead of a
row per bucket (a 100,000-point series at 2,000 points: 12 blobs and 27 rows, not 1,563 rows).
An append seals the blocks its points complete (:func:`seal_blocks`); a sealed block never
changes (only the last bucket of a level is ever partial), and a rewind deletes the series.

A block's columns are :data:`rollups.COLUMNS` as stored, made small (a bucket's iterations
after its first, first iteration and first time as deltas along the block, values as their
bits), each kept as its offsets from the block's smallest in the fewest whole bytes that hold
them (0, 1, 2, 4 or 8): about 45 bytes a bucket (a row took about 90). Not deflated, nor
byte-shuffled: blocks of the same widths decode together as one numpy record array, a few
array operations for a compare view's thousand blocks.

A level reads back as a :data:`Table`: n, iterations and epochs as exact int64 (past 2^53 too:
blocks keep every integer column exactly, rows are taken exactly when a column reaches 2^53),
values and times as float64.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, bindparam, delete, select

from mltrail.store.sql import rollups
from mltrail.store.sql.access import fetch_tuples
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import metric_rollup_blocks, metric_rollups

BLOCK_BUCKETS = 128
_FORMAT = 2
_COLUMNS = rollups.COLUMNS
_WIDTH = len(_COLUMNS)
# format, buckets, each column's width in bytes, its base, the two delta columns' first values
_HEADER = struct.Struct(f"<BI{_WIDTH}s{_WIDTH}q2q")
_SIZES = (0, 1, 2, 4, 8)
_INDEX = {name: i for i, name in enumerate(_COLUMNS)}
_VALUES = [_INDEX[f"{p}_value"] for p in rollups.PARTS]
_TIMES = [_INDEX[f"{p}_time"] for p in rollups.PARTS]
_ITERATIONS = [_INDEX[f"{p}_iteration"] for p in rollups.PARTS[1:]]  # after first_iteration
_FIRST_IT, _FIRST_TIME = _INDEX["first_iteration"], _INDEX["first_time"]
# a level's columns as read: n, iterations and epochs exact int64 (past 2^53 too), values and
# times (ms) float64
_INTS = [j for j in range(_WIDTH) if j not in _VALUES and j not in _TIMES]
_FLOATS = [*_VALUES, *_TIMES]
_TIME_AT = {j: i for i, j in enumerate(_FLOATS) if j in _TIMES}  # a time's row in the floats
_BIG = 2.0**53  # from here on a double skips whole numbers

# "bucket" and COLUMNS: "bucket", n, iterations and epochs int64, values and times float64,
# times absolute ms (NaN: none)
Table = dict[str, np.ndarray]


# --- the packed form ----------------------------------------------------------------------------
def encode_block(rows: Sequence[tuple[Any, ...]]) -> bytes | None:
    """A block of stored bucket rows (the :data:`rollups.COLUMNS` values, in bucket order),
    packed; None when a time is missing or not whole milliseconds (the rows stay rows)."""
    floats = np.array(rows, dtype=np.float64).reshape(len(rows), _WIDTH).T  # NULL becomes NaN
    return encode_columns(floats, lambda j: np.array([row[j] for row in rows], dtype=np.int64))


def encode_columns(floats: np.ndarray, exact: Callable[[int], np.ndarray]) -> bytes | None:
    """:func:`encode_block` of the rows' (COLUMNS, buckets) float64 array (values NaN for
    NULL), ``exact(j)`` giving column ``j`` as exact integers (read past 2^53 only)."""
    n = floats.shape[1]
    if np.isnan(floats[_TIMES]).any():
        return None
    table = np.empty((_WIDTH, n), dtype="<i8")
    table[_VALUES] = floats[_VALUES].view("<i8")
    others = [j for j in range(_WIDTH) if j not in _VALUES]
    table[others] = floats[others].astype(np.int64)
    if not np.array_equal(table[_TIMES], floats[_TIMES]):
        return None  # not whole milliseconds
    for j in others:
        if np.abs(floats[j]).max() >= _BIG:  # beyond a double's whole numbers: exactly
            table[j] = exact(j)
    table[_ITERATIONS] -= table[_FIRST_IT]
    starts = table[[_FIRST_IT, _FIRST_TIME], 0].tolist()
    for j in (_FIRST_IT, _FIRST_TIME):
        table[j] = np.diff(table[j], prepend=table[j, :1])
    bases = table.min(axis=1)
    offsets = table.view(np.uint64) - bases.view(np.uint64)[:, None]  # wraps: always >= 0
    largest = offsets.max(axis=1).tolist()
    widths = [next(w for w in _SIZES if x < 256**w) if x < 2**56 else 8 for x in largest]
    fields = [(f"c{j}", f"<u{w}") for j, w in enumerate(widths) if w]
    records = np.empty(n, dtype=fields)
    for name, _ in fields:
        records[name] = offsets[int(name[1:])]
    head = _HEADER.pack(_FORMAT, n, bytes(widths), *bases.tolist(), *starts)
    return head + records.tobytes()


def decode_blocks(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_block` for blocks of :data:`BLOCK_BUCKETS` buckets: the
    (blocks, _INTS, buckets) int64 and (blocks, _FLOATS, buckets) float64 arrays, times as
    stored."""
    ints = _decode_ints(blobs)
    floats = np.empty((len(blobs), len(_FLOATS), BLOCK_BUCKETS))
    floats[:, : len(_VALUES)] = ints[:, _VALUES].view("<f8")
    floats[:, len(_VALUES) :] = ints[:, _TIMES]
    return ints[:, _INTS], floats


def _row_arrays(rows: Sequence[tuple[Any, ...]], lead: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored rows (``lead`` key columns, then :data:`COLUMNS`) as the int64 array of the key
    columns and :data:`_INTS` (exact past 2^53 too) and the float64 array of :data:`_FLOATS`
    (NULL: NaN)."""
    floats = np.array(rows, dtype=np.float64).reshape(-1, lead + _WIDTH).T
    at, fat = _ROW_AT[lead]
    exact = floats[at]
    ints = exact.astype(np.int64)
    if len(rows) and np.abs(exact, out=exact).max() >= _BIG:
        for i in np.flatnonzero(exact.max(axis=1) >= _BIG).tolist():
            ints[i] = np.array([row[at[i]] for row in rows], dtype=np.int64)
    return ints, floats[fat]


# per number of key columns: the rows' columns :func:`_row_arrays` takes as int64 and as float64
_ROW_AT = {
    lead: (np.array([*range(lead), *(lead + j for j in _INTS)]), np.array(_FLOATS) + lead)
    for lead in (1, 2)
}


def _decode_ints(blobs: Sequence[bytes]) -> np.ndarray:
    """The (blocks, COLUMNS, buckets) int64 array of blocks, values as their bits (a view of
    :func:`_decode_columns`)."""
    return _decode_columns(blobs).transpose(1, 0, 2)


def _decode_columns(blobs: Sequence[bytes]) -> np.ndarray:
    """The (COLUMNS, blocks, buckets) int64 array of blocks, values as their bits: each
    column contiguous (a level's reads gather columns); the blocks of the same column widths
    (most of a series' blocks) decoded together."""
    n = BLOCK_BUCKETS
    ints = np.empty((_WIDTH, len(blobs), n), dtype=np.int64)
    alike: dict[bytes, list[tuple[int, Any, tuple[int, ...]]]] = {}
    skip = _HEADER.size
    for k, blob in enumerate(blobs):
        data = memoryview(blob)
        _format, size, widths, *values = _HEADER.unpack_from(data)
        if size != n:
            raise ValueError(f"a rollup block of {size} buckets, not {n}")
        alike.setdefault(widths, []).append((k, data[skip:], tuple(values)))
    for widths, found in alike.items():
        numbers = np.array([x for _, _, x in found], dtype=np.int64)
        bases, starts = numbers[:, :_WIDTH].view(np.uint64), numbers[:, _WIDTH:]
        fields = [(f"c{j}", f"<u{w}") for j, w in enumerate(widths) if w]
        body = b"".join([data for _, data, _ in found])
        records = np.frombuffer(body, dtype=fields).reshape(len(found), n)
        whole = len(alike) == 1
        part = ints if whole else np.empty((_WIDTH, len(found), n), dtype=np.int64)
        unsigned = part.view(np.uint64)
        for j, w in enumerate(widths):
            if w:
                np.add(records[f"c{j}"], bases[:, j, None], out=unsigned[j], casting="unsafe")
            else:
                unsigned[j] = bases[:, j, None]
        for i, j in enumerate((_FIRST_IT, _FIRST_TIME)):
            np.cumsum(part[j], axis=1, out=part[j])
            part[j] += starts[:, i, None]
        part[_ITERATIONS] += part[_FIRST_IT]
        if whole:
            return ints  # every block, in order
        ints[:, [k for k, _, _ in found]] = part
    return ints


# --- reads --------------------------------------------------------------------------------------
def _table(buckets: np.ndarray, ints: np.ndarray, floats: np.ndarray) -> Table:
    """A level's table from bucket numbers and the (_INTS, buckets) and (_FLOATS, buckets)
    arrays as stored, sorted by bucket, every time absolute."""
    order = None if np.all(buckets[1:] > buckets[:-1]) else np.argsort(buckets, kind="stable")
    if order is not None:
        buckets, ints, floats = buckets[order], ints[:, order], floats[:, order]
    out: Table = {"bucket": buckets}
    out.update({_COLUMNS[j]: ints[i] for i, j in enumerate(_INTS)})
    out.update({_COLUMNS[j]: floats[i] for i, j in enumerate(_FLOATS)})
    for name in rollups.RELATIVE_TIMES:
        out[name] = out[name] + out["first_time"]
    return out


def fetch_level(conn: Connection, level: int, series_ids: Sequence[int]) -> StoredLevel:
    """Every bucket of ``level`` of each series, as stored: one query for their blocks and
    one for their rows (in parts of 500 series: SQLite bounds a statement's parameters)."""
    blocks: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    b, r = metric_rollup_blocks.c, metric_rollups.c
    for start in range(0, len(series_ids), 500):
        ids = list(series_ids[start : start + 500])
        query = select(b.series_id, b.block, b.data).where(b.level == level, b.series_id.in_(ids))
        blocks += fetch_tuples(conn, query.order_by(b.series_id, b.block))
        cols = [r.series_id, r.bucket, *(r[c] for c in _COLUMNS)]
        query = select(*cols).where(r.level == level, r.series_id.in_(ids))
        rows += fetch_tuples(conn, query.order_by(r.series_id, r.bucket))
    return StoredLevel(blocks, rows)


class StoredLevel:
    """The buckets of a level of several series as :func:`fetch_level` found them, a column
    at a time (a read decodes only the columns it uses): :meth:`source` lists the blocks'
    buckets (``numbers``: series and block number of each block, by series, then block)
    followed by the rows' (``row_keys``: series and bucket of each row, by series, then
    bucket)."""

    def __init__(self, blocks: list[tuple[Any, ...]], rows: list[tuple[Any, ...]]) -> None:
        self.numbers = np.array([row[:2] for row in blocks], dtype=np.int64).reshape(-1, 2)
        self._blocks = _Blocks([row[2] for row in blocks])
        self._ints, self._floats = _row_arrays(rows, 2)
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
        elif _INDEX[name] in _INTS:
            j = _INDEX[name]
            found = np.concatenate((self._blocks.column(j), self._ints[2 + _INTS.index(j)]))
        else:  # values from their bits, times (ms) as doubles
            j = _INDEX[name]
            stored = self._blocks.column(j)
            stored = stored.view("<f8") if j in _VALUES else stored
            found = np.concatenate((stored, self._floats[_FLOATS.index(j)]), dtype=np.float64)
            if name in rollups.RELATIVE_TIMES:
                found += self.source("first_time")
        self._sources[name] = found
        return found

    def at(self, name: str, where: np.ndarray) -> np.ndarray:
        """``source(name).take(where)``, decoding only those buckets of a column not decoded
        yet (a read takes some columns only at the points it picks)."""
        j = _INDEX.get(name)
        if name in self._sources or j is None or j in (_FIRST_IT, _FIRST_TIME):
            return self.source(name).take(where)
        held = self._blocks.held
        inside = where < held
        rows = where[~inside] - held
        if j in _INTS:
            out = np.empty(len(where), np.int64)
            out[inside] = self._blocks.at(j, where[inside])
            out[~inside] = self._ints[2 + _INTS.index(j)].take(rows)
            return out
        found = np.empty(len(where))
        stored = self._blocks.at(j, where[inside])
        found[inside] = stored.view("<f8") if j in _VALUES else stored
        found[~inside] = self._floats[_FLOATS.index(j)].take(rows)
        if name in rollups.RELATIVE_TIMES:
            found += self.at("first_time", where)
        return found


class _Blocks:
    """Blocks decoded a column at a time (:func:`_decode_columns`' columns, each flat)."""

    def __init__(self, blobs: Sequence[bytes]) -> None:
        self._count = len(blobs)
        self._columns: dict[int, np.ndarray] = {}
        heads = [_HEADER.unpack_from(blob) for blob in blobs]
        widths = {head[2] for head in heads}
        self._whole: np.ndarray | None = None
        if len(widths) > 1:  # blocks of several widths: decoded all at once
            self._whole = _decode_columns(blobs)
            return
        if any(head[1] != BLOCK_BUCKETS for head in heads):
            raise ValueError(f"a rollup block not of {BLOCK_BUCKETS} buckets")
        self._widths = next(iter(widths)) if heads else bytes(_WIDTH)
        numbers = np.array([head[3:] for head in heads], dtype=np.int64).reshape(-1, _WIDTH + 2)
        self._bases, self._starts = numbers[:, :_WIDTH].view(np.uint64), numbers[:, _WIDTH:]
        fields = [(f"c{j}", f"<u{w}") for j, w in enumerate(self._widths) if w]
        body = b"".join([memoryview(blob)[_HEADER.size :] for blob in blobs])
        records = np.frombuffer(body, dtype=fields) if fields else None  # None: no field
        self._records = records if records is None else records.reshape(-1, BLOCK_BUCKETS)

    @property
    def held(self) -> int:
        """How many buckets the blocks hold."""
        return self._count * BLOCK_BUCKETS

    def at(self, j: int, where: np.ndarray) -> np.ndarray:
        """``column(j).take(where)``: only those buckets decoded, unless the column is a
        running sum (first iteration and time) or decoded already."""
        if self._whole is not None or j in self._columns or j in (_FIRST_IT, _FIRST_TIME):
            return self.column(j).take(where)
        block, bucket = np.divmod(where, BLOCK_BUCKETS)
        found = self._bases[block, j]
        if self._widths[j] and self._records is not None:
            found += self._records[f"c{j}"][block, bucket]  # uint64: wraps as column() does
        signed = found.view(np.int64)
        if j in _ITERATIONS:
            signed += self.column(_FIRST_IT).take(where)
        return signed

    def column(self, j: int) -> np.ndarray:
        """Column ``j`` of every bucket of the blocks in order, int64 (values as bits)."""
        if self._whole is not None:
            return self._whole[j].reshape(-1)
        if j in self._columns:
            return self._columns[j]
        out = np.empty((self._count, BLOCK_BUCKETS), np.uint64)
        if self._widths[j] and self._records is not None:
            np.add(self._records[f"c{j}"], self._bases[:, j, None], out=out, casting="unsafe")
        else:
            out[:] = self._bases[:, j, None]
        signed = out.view(np.int64)
        if j in (_FIRST_IT, _FIRST_TIME):
            np.cumsum(signed, axis=1, out=signed)
            signed += self._starts[:, (_FIRST_IT, _FIRST_TIME).index(j), None]
        if j in _ITERATIONS:
            signed += self.column(_FIRST_IT).reshape(self._count, BLOCK_BUCKETS)
        self._columns[j] = signed.reshape(-1)
        return self._columns[j]


def _joined(found: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Table:
    if not found:
        empty = np.empty(0, np.int64)
        return _table(empty, np.empty((len(_INTS), 0), np.int64), np.empty((len(_FLOATS), 0)))
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
    bucket numbers ``span`` when given: the blocks overlapping them and the matching rows."""
    lo, hi = bounds
    b, r = metric_rollup_blocks.c, metric_rollups.c
    where = [b.series_id == series_id, b.level == level]
    where += [b.last_iteration >= lo, b.first_iteration <= hi]
    rows_where = [r.series_id == series_id, r.level == level]
    rows_where += [r.last_iteration >= lo, r.first_iteration <= hi]
    if span is not None:
        where += [b.block >= span[0] // BLOCK_BUCKETS, b.block <= span[1] // BLOCK_BUCKETS]
        rows_where += [r.bucket >= span[0], r.bucket <= span[1]]
    found = []
    blocks = fetch_tuples(conn, select(b.block, b.data).where(and_(*where)))
    if blocks:
        ints, floats = decode_blocks([data for _, data in blocks])
        last, first = _INTS.index(_INDEX["last_iteration"]), _INTS.index(_FIRST_IT)
        for (block, _), i, f in zip(blocks, ints, floats, strict=True):
            buckets = np.arange(BLOCK_BUCKETS, dtype=np.int64) + block * BLOCK_BUCKETS
            keep = (i[last] >= lo) & (i[first] <= hi)
            if span is not None:
                keep &= (buckets >= span[0]) & (buckets <= span[1])
            found.append((buckets[keep], i[:, keep], f[:, keep]))
    rows = fetch_tuples(conn, select(r.bucket, *(r[c] for c in _COLUMNS)).where(*rows_where))
    if rows:
        ints, floats = _row_arrays(rows, 1)
        found.append((ints[0], ints[1:], floats))
    return _joined(found)


# --- writes -------------------------------------------------------------------------------------
# A level's buckets an append computed: per bucket its series id and bucket number, and the
# :data:`rollups.COLUMNS` as stored (exact integers; times relative as in the rows)
Fresh = tuple[np.ndarray, np.ndarray, list[np.ndarray]]
Block = tuple[int, int, int, int, int, bytes]  # series, level, block, iterations, data


def seal_blocks(
    conn: Connection,
    grown: Sequence[tuple[int, int, int]],
    fresh: Callable[[int], Fresh],
    sqlite: bool,
) -> list[Block]:
    """The blocks an append completes: ``grown`` lists (series id, points before, points
    after), ``fresh(level)`` the level's buckets the append computed. A level's block is
    complete once the series holds its every point; it packs the rows of its buckets as they
    are stored after the append (those of earlier complete blocks still stored as rows too),
    read back only for the buckets stored before the append (the append's own come from
    ``fresh``, as the database would give them back: ``sqlite`` keeps no -0.0).
    The caller writes the blocks (:func:`store_blocks`) and no row of their buckets."""
    blocks: list[Block] = []
    levels: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]] = {}
    for series_id, before, after in grown:
        for level, size in enumerate(rollups.LEVEL_SIZES, start=1):
            span = BLOCK_BUCKETS * size
            if after // span > before // span:
                if level not in levels:
                    levels[level] = _as_read(fresh(level), sqlite)
                end = (after // span) * BLOCK_BUCKETS
                blocks += _level_blocks(conn, (series_id, level), (before // size, end),
                                        levels[level])  # fmt: skip
    return blocks


def _as_read(fresh: Fresh, sqlite: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """``fresh`` with its columns also as one float64 array, as the database gives them back
    (NaN values as NULL: the one NaN; on SQLite -0.0 as 0.0; times as doubles)."""
    series, bucket, columns = fresh
    floats = np.array(columns, dtype=np.float64).reshape(_WIDTH, len(bucket))
    values = floats[_VALUES]
    if sqlite:
        values += 0.0  # -0.0 + 0.0 is 0.0
    values[np.isnan(values)] = np.nan
    floats[_VALUES] = values
    return series, bucket, floats, columns


def store_blocks(conn: Connection, db: Database, blocks: list[Block]) -> None:
    """Write the blocks :func:`seal_blocks` packed with one insert, and delete their buckets'
    rows stored before the append with one executemany delete."""
    if not blocks:
        return
    names = ["series_id", "level", "block", "first_iteration", "last_iteration", "data"]
    db.insert_rows(conn, metric_rollup_blocks, names, blocks)
    gone = [{"s": s, "l": level, "lo": k * BLOCK_BUCKETS, "hi": (k + 1) * BLOCK_BUCKETS}
            for s, level, k, *_ in blocks]  # fmt: skip
    conn.execute(_DELETE_ROWS, gone)


_R = metric_rollups.c
# built once: an append that completes blocks runs them per series and level
_BLOCK_ROWS = (
    select(_R.bucket, *(_R[c] for c in _COLUMNS))
    .where(_R.series_id == bindparam("s"), _R.level == bindparam("l"), _R.bucket < bindparam("end"))
    .order_by(_R.bucket)
)
_DELETE_ROWS = delete(metric_rollups).where(
    _R.series_id == bindparam("s"),
    _R.level == bindparam("l"),
    _R.bucket >= bindparam("lo"),
    _R.bucket < bindparam("hi"),
)


def _level_blocks(
    conn: Connection,
    key: tuple[int, int],
    bounds: tuple[int, int],
    level: tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]],
) -> list[Block]:
    """The blocks packing every complete block of buckets below ``bounds[1]`` still stored as
    rows, those from ``bounds[0]`` on (the append's) taken from ``level`` (a block with a
    bucket without times stays rows)."""
    (series_id, number), (lo, end) = key, bounds
    result = conn.execute(_BLOCK_ROWS, {"s": series_id, "l": number, "end": lo})
    try:
        rows = list(result.cursor.fetchall())
    finally:
        result.close()
    series, bucket, floats, columns = level
    mine = np.flatnonzero((series == series_id) & (bucket < end))
    buckets = [row[0] for row in rows] + bucket[mine].tolist()
    table = np.empty((_WIDTH, len(buckets)))
    table[:, : len(rows)] = np.array([row[1:] for row in rows], np.float64).reshape(-1, _WIDTH).T
    table[:, len(rows) :] = floats[:, mine]
    held = len(rows)

    def exact(j: int, start: int, stop: int) -> np.ndarray:
        """Column ``j`` of buckets ``start:stop`` as exact integers (as stored)."""
        old = [row[1 + j] for row in rows[start:stop]]
        picked = mine[max(start - held, 0) : max(stop - held, 0)]
        new = floats[j, picked] if j in _TIMES else columns[j][picked]  # times stored as doubles
        return np.concatenate([np.array(old, dtype=np.int64), new.astype(np.int64)])

    blocks = []
    for start in range(0, len(buckets), BLOCK_BUCKETS):
        stop = start + BLOCK_BUCKETS
        first = buckets[start]
        if (
            stop > len(buckets)
            or buckets[stop - 1] != first + BLOCK_BUCKETS - 1
            or first % BLOCK_BUCKETS
        ):
            break  # buckets missing (never, as buckets are written): leave the rest as rows
        data = encode_columns(
            table[:, start:stop], functools.partial(exact, start=start, stop=stop)
        )
        if data is None:
            continue
        lowest = int(exact(_FIRST_IT, start, stop).min())
        highest = int(exact(_INDEX["last_iteration"], start, stop).max())
        blocks.append((series_id, number, first // BLOCK_BUCKETS, lowest, highest, data))
    return blocks


def unpack_all(conn: Connection) -> None:
    """Every block back into rows (migration 0014's downgrade)."""
    b = metric_rollup_blocks.c
    for series_id, level, block, data in fetch_tuples(
        conn, select(b.series_id, b.level, b.block, b.data)
    ):
        ints = _decode_ints([data])[0]
        values = ints[_VALUES].view("<f8")
        rows = []
        for k in range(ints.shape[1]):
            row = dict(zip(_COLUMNS, ints[:, k].tolist(), strict=True))
            for i, value in zip(_VALUES, values[:, k].tolist(), strict=True):
                row[_COLUMNS[i]] = None if value != value else value
            rows.append({"series_id": series_id, "level": level,
                         "bucket": block * BLOCK_BUCKETS + k, **row})  # fmt: skip
        conn.execute(metric_rollups.insert(), rows)
    conn.execute(delete(metric_rollup_blocks))
