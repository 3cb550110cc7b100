"""The rollup buckets of a series not sealed in a block yet (the last block's buckets so far of
each level, its partial last bucket included): one row per series in ``metric_rollup_tails``,
its buckets packed in one blob (migration 0025; a row per bucket before, ~0.25 B a point of a
5,000-point series flushed every 10 iterations).

A blob holds a (:data:`KEYS` + WIDTH, buckets) int64 table: level, bucket, then
:data:`rollups.COLUMNS` as a row held them (times after the first relative; values and times as
their float64 bits, NULL as NaN), by level, then bucket, as byte planes (each column's 8,
lowest first). Format 2: a header (format, raw buckets, packed buckets: ``<BII``); the last
bucket of each level (the partial one an append merges into), raw: a bit a plane saying which
are zero in all of them (left out), then the others' bytes; then the other buckets packed: a
bit a plane saying which are the same in every bucket (kept once), then raw deflate of the
constant planes' bytes followed by the other planes'. Format 1 (``<BI``: format, buckets,
then a packed part of every bucket) is what migration 0025 writes; an append writes format 2.
An append reads the blobs of its series once (:func:`fetch_tails`), takes the partials it
merges into and the buckets of the blocks it seals from them, and writes each series' blob
again (:func:`write`): the packed part as stored when its buckets did not change (no zlib for
an append that completes no bucket: only the raw part is made, a lone point's from plain
ints, :func:`write_lone`), else all of them deflated by one
compressor. A process remembers the blobs it read or wrote lately, decoded (:class:`Tail`,
each part made when first asked for): an append finds the blobs the last one wrote without
decoding them. A read decodes those of its series and keeps the level it reads.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection

from mltrail.store.sql.engine import Database, select_any_tuples
from mltrail.store.sql.rollup_blocks import BIG, BLOCK_BUCKETS, FLOATS, INTS, VALUES, WIDTH
from mltrail.store.sql.rollup_tail_codec import EMPTY as EMPTY
from mltrail.store.sql.rollup_tail_codec import (
    KEYS,
    pack_many,
    raw_many,
    raw_part,
    unpack,
    unraw,
)
from mltrail.store.sql.tables import metric_rollup_tails

_FORMAT = 2
_HEAD = struct.Struct("<BII")  # format, raw buckets, packed buckets
_HEAD_1 = struct.Struct("<I")  # format 1: buckets, then a packed part
_FLOAT_AT = np.array(FLOATS) + KEYS  # the table's rows held as float64 bits
_INT_AT = np.array([*range(KEYS), *(j + KEYS for j in INTS)])
_NAN = np.array(np.nan).view(np.int64)  # NULL (and NaN) as stored
_LEVEL, _BUCKET = 0, 1


class Tail:
    """A series' stored tails: its ``table`` (by level, then bucket), for a blob of format 2
    its packed part as stored (``packed``, reused unchanged by an append that changes only the
    last buckets) and that part's buckets (``prefix``), and the last bucket of each level
    (``lasts``: each as KEYS + WIDTH plain ints, by level). Each is made from the others when
    first asked for (a lone point's append needs only ``lasts`` and ``packed``); read-only."""

    __slots__ = ("_lasts", "_raw", "_table", "blob", "packed", "prefix")

    def __init__(
        self,
        table: np.ndarray | None,
        prefix: np.ndarray | None,
        packed: bytes | None,
        raw: np.ndarray | None = None,
        lasts: list[list[int]] | None = None,
    ) -> None:
        self._table, self.prefix, self.packed, self._raw, self._lasts = (
            table, prefix, packed, raw, lasts)  # fmt: skip
        self.blob: bytes | None = None  # the blob it is remembered for (_remember)
        if table is not None:
            table.flags.writeable = False

    @property
    def table(self) -> np.ndarray:
        if self._table is None:
            assert self.prefix is not None  # a tail without its table has its packed part
            table = np.concatenate([self.prefix, self.raw], axis=1)
            self._table = table[:, np.lexsort((table[_BUCKET], table[_LEVEL]))]
            self._table.flags.writeable = False
        return self._table

    @property
    def raw(self) -> np.ndarray:
        """The last bucket of each level, as a table."""
        if self._raw is None:
            if self._lasts is not None:
                self._raw = np.array(self._lasts, np.int64).reshape(-1, KEYS + WIDTH).T
            else:
                self._raw = self.table[:, _last_of_levels(self.table[_LEVEL])]
        return self._raw

    @property
    def lasts(self) -> list[list[int]]:
        if self._lasts is None:
            self._lasts = self.raw.T.tolist()
        return self._lasts


def _last_of_levels(levels: np.ndarray) -> np.ndarray:
    """Which buckets of a table are the last of their level."""
    last = np.ones(len(levels), dtype=bool)
    last[:-1] = levels[1:] != levels[:-1]
    return last


def encode(table: np.ndarray) -> bytes:
    """A blob of a (KEYS + WIDTH, buckets) int64 table (by level, then bucket)."""
    return encode_tails(table, np.array([0, table.shape[1]]), [None])[0]


def encode_tails(
    table: np.ndarray,
    bounds: np.ndarray,
    stored: Sequence[Tail | None],
    remember: bool = False,
) -> list[bytes]:
    """The blobs of the parts of a (KEYS + WIDTH, buckets) table, part ``k`` its buckets
    ``bounds[k]:bounds[k + 1]`` (each by level, then bucket): the last bucket of each level (the
    partial one an append merges into) kept raw (:func:`raw_many`), the others packed
    (:func:`pack_many`), the packed part of the part's ``stored`` tail reused when its buckets
    are the same. ``remember``: the table is not changed after, so :func:`decode_tail` may give
    its parts for their blobs."""
    cuts = np.zeros(table.shape[1], dtype=bool)
    cuts[bounds[1:-1][bounds[1:-1] < table.shape[1]]] = True
    last = _last_of_levels(table[_LEVEL])
    last[:-1] |= cuts[1:]
    ranks = np.cumsum(last) - last  # a bucket's raw ones before it
    edges = bounds.tolist()
    raw_edges = [int(ranks[e]) if e < len(ranks) else int(last.sum()) for e in edges]
    raw_table = table[:, last]
    raws = raw_many(raw_table, np.array(raw_edges))
    prefix_all = table[:, ~last]
    prefix_edges = [e - r for e, r in zip(edges, raw_edges, strict=True)]
    prefixes = [prefix_all[:, prefix_edges[k] : prefix_edges[k + 1]] for k in range(len(stored))]
    packed: list[bytes | None] = [
        old.packed
        if old is not None
        and old.prefix is not None
        and old.prefix.shape == prefix.shape
        and np.array_equal(old.prefix, prefix)
        else None
        for old, prefix in zip(stored, prefixes, strict=True)
    ]
    todo = [k for k, p in enumerate(packed) if p is None]
    if todo:
        sizes = [prefixes[k].shape[1] for k in todo]
        joined = np.concatenate([prefixes[k] for k in todo], axis=1)
        for k, made in zip(todo, pack_many(joined, np.cumsum([0, *sizes])), strict=True):
            packed[k] = made
    out = []
    for k, (raw, part, prefix) in enumerate(zip(raws, packed, prefixes, strict=True)):
        head = _HEAD.pack(_FORMAT, raw_edges[k + 1] - raw_edges[k], prefix.shape[1])
        data = head + raw + (part or b"")
        out.append(data)
        if remember:
            whole = table[:, edges[k] : edges[k + 1]]
            raw_k = raw_table[:, raw_edges[k] : raw_edges[k + 1]]
            _remember(data, Tail(whole, prefix, part or b"", raw=raw_k))
    return out


# blobs read or written lately, by their bytes (a blob always decodes the same): an append
# finds the ones the last append wrote (a writer keeps appending to the same series) without
# decoding them again; their tables are read-only. The blob an append replaces is forgotten
# (:func:`_forget`): no later append finds it, and the replaced blobs of a run's series filled
# the memo up to its bound (5 MiB of a server's heap after the MLflow client's 50,000 points of
# 20 series, 1,000 blobs; up to 4,096 of them for good)
_DECODED: dict[bytes, Tail] = {}
_DECODED_MAX = 4096


def _remember(data: bytes, tail: Tail) -> Tail:
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    _DECODED[data] = tail
    tail.blob = data
    return tail


def _forget(replaced: Sequence[Tail]) -> None:
    """Drop the remembered tails of blobs an append replaced (unless remembered again since:
    an append that wrote the same bytes)."""
    for tail in replaced:
        if tail.blob is not None and _DECODED.get(tail.blob) is tail:
            del _DECODED[tail.blob]


def decode(data: bytes) -> np.ndarray:
    """The (KEYS + WIDTH, buckets) int64 table of a blob, by level, then bucket.

    Raises:
        ValueError: a format this version does not read.
    """
    return decode_tail(data).table


def decode_tail(data: bytes) -> Tail:
    """A blob as a :class:`Tail`.

    Raises:
        ValueError: a format this version does not read.
    """
    found = _DECODED.get(data)
    if found is not None:
        return found
    form = data[0]
    if form == 1:  # as migration 0025 wrote it before format 2
        (n,) = _HEAD_1.unpack_from(data, 1)
        return Tail(unpack(bytes(data[1 + _HEAD_1.size :]), n), None, None)
    if form != _FORMAT:
        raise ValueError(f"rollup tails of format {form}, which this version does not read")
    _, n_raw, n_packed = _HEAD.unpack_from(data)
    raw, end = unraw(data, _HEAD.size, n_raw)
    packed = bytes(data[end:])
    return _remember(bytes(data), Tail(None, unpack(packed, n_packed), packed, raw=raw))


def fetch(conn: Connection, series_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Each series' table (those with a blob)."""
    return {s: tail.table for s, tail in fetch_tails(conn, series_ids).items()}


def fetch_tails(conn: Connection, series_ids: Sequence[int]) -> dict[int, Tail]:
    """Each series' :class:`Tail` (those with a blob), one query per 100 series."""
    tests, wanted = ("series_id =",), [(s,) for s in series_ids]
    found = select_any_tuples(conn, metric_rollup_tails, tests, wanted, ("series_id", "data"))
    return {series_id: decode_tail(data) for series_id, data in found}


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


def from_columns(
    keys: Sequence[np.ndarray], columns: Sequence[np.ndarray], sqlite: bool
) -> np.ndarray:
    """:func:`from_rows` of buckets given as columns: ``keys`` (integer arrays: a series id,
    level and bucket), then :data:`rollups.COLUMNS` (values and times float, NaN for NULL)."""
    lead = len(keys)
    table = np.empty((lead + WIDTH, len(keys[0])), np.int64)
    for at, column in enumerate(keys):
        table[at] = column
    for j in INTS:
        table[lead + j] = columns[j]  # exact from integers, as from_rows' floats else
    floats = np.array([columns[j] for j in FLOATS], np.float64).reshape(len(FLOATS), -1)
    if sqlite:
        floats[: len(VALUES)] += 0.0  # -0.0 + 0.0 is 0.0
    floats[np.isnan(floats)] = np.nan
    table[np.array(FLOATS) + lead] = floats.view(np.int64)
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
    stored: dict[int, Tail],
    series_ids: np.ndarray,
    changed: np.ndarray,
    sealed: set[tuple[int, int, int]],
) -> None:
    """Write the tails of ``series_ids`` over ``stored`` (as :func:`fetch_tails` found them):
    ``changed`` is a (1 + KEYS + WIDTH, buckets) table led by the series id of the buckets an
    append made or merged into (each whole), which replace the stored ones of their keys; the
    buckets of ``sealed`` blocks (series id, level, block) are left out. One update for the
    series with a blob, one insert for the others."""
    owners = _distinct(series_ids)
    old = [(s, stored[s].table) for s in owners.tolist() if s in stored]
    if old:
        sizes = [t.shape[1] for _, t in old]
        tables = np.concatenate([t for _, t in old], axis=1)
        lead = np.repeat(np.array([s for s, _ in old], np.int64), sizes)
        joined = np.concatenate([np.vstack([lead, tables]), changed], axis=1)
    else:
        joined = changed
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
    ids = owners.tolist()
    blobs = encode_tails(joined[1:], bounds, [stored.get(s) for s in ids], remember=True)
    _forget([stored[s] for s in ids if s in stored])
    updated: list[tuple[Any, ...]] = []
    inserted: list[tuple[Any, ...]] = []
    for s, data in zip(ids, blobs, strict=True):
        if s in stored:
            updated.append((data, s))
        else:
            inserted.append((s, data))
    db.update_rows(conn, metric_rollup_tails, ["data"], ("series_id",), updated)
    db.insert_rows(conn, metric_rollup_tails, ["series_id", "data"], inserted)


# each of a row's columns: 0 integer, 1 float, 2 value (float, -0.0 stored as 0.0 on SQLite)
_KINDS = [2 if j - KEYS in VALUES else 1 if j - KEYS in FLOATS else 0 for j in range(KEYS + WIDTH)]
_INT_COLUMNS = [j for j, kind in enumerate(_KINDS) if not kind]
_FLOAT_COLUMNS = [(j, kind == 2) for j, kind in enumerate(_KINDS) if kind]
_ROW = struct.Struct("<" + "".join("d" if kind else "q" for kind in _KINDS))  # a row's columns
_BUCKET_BITS = struct.Struct(f"<{KEYS + WIDTH}q")  # ... as the int64s a table holds
_NAN_FLOAT = struct.unpack("<d", struct.pack("<q", int(_NAN)))[0]  # NULL as stored


def last_rows(tail: Tail) -> dict[tuple[int, int], tuple[Any, ...]]:
    """The last bucket of each level of a tail as :func:`as_rows` gives it, by (level,
    bucket): the partials an append merges into, without the table's arrays."""
    out = {}
    for bucket in tail.lasts:
        row = _ROW.unpack(_BUCKET_BITS.pack(*bucket))
        out[bucket[_LEVEL], bucket[_BUCKET]] = tuple(
            None if v != v else v for v in row)  # fmt: skip
    return out


def write_lone(
    conn: Connection, db: Database, stored: dict[int, Tail], rows: Sequence[tuple[Any, ...]]
) -> bool:
    """:func:`write` for changed buckets ``rows`` (series id, level, bucket, *COLUMNS as
    :func:`from_rows` takes them) of one series that are each the stored last bucket of their
    level (a lone point's append completing no bucket, the usual synchronous log_metric): the
    raw part of its blob made again from plain ints (:attr:`Tail.lasts`), its packed part kept,
    the same bytes :func:`write` gives. False (nothing written) for any other append."""
    series_id = rows[0][0]
    tail = stored.get(series_id)
    if tail is None or tail.prefix is None or tail.packed is None:
        return False
    raw = list(tail.lasts)
    where = {(b[_LEVEL], b[_BUCKET]): i for i, b in enumerate(raw)}
    for row in rows:
        i = where.get((row[1], row[2]))
        if row[0] != series_id or i is None:
            return False
        bucket = _stored_ints(row[1:], db.is_sqlite)
        if bucket is None:
            return False
        raw[i] = bucket
    part = raw_part(np.array(raw, "<i8").reshape(len(raw), KEYS + WIDTH))
    data = _HEAD.pack(_FORMAT, len(raw), tail.prefix.shape[1]) + part + tail.packed
    _remember(data, Tail(None, tail.prefix, tail.packed, lasts=raw))
    _forget([tail])
    db.update_rows(conn, metric_rollup_tails, ["data"], ("series_id",), [(data, series_id)])
    return True


def _stored_ints(row: Sequence[Any], sqlite: bool) -> list[int] | None:
    """A row of level, bucket, then COLUMNS as :func:`from_rows` stores it (None for a row
    it would not take)."""
    found = list(row)
    for j in _INT_COLUMNS:
        if found[j] is None:
            return None
        found[j] = int(found[j])
    for j, value in _FLOAT_COLUMNS:
        v = found[j]
        f = _NAN_FLOAT if v is None else float(v)
        if f != f:
            f = _NAN_FLOAT
        elif value and sqlite:
            f += 0.0  # -0.0 + 0.0 is 0.0
        found[j] = f
    return list(_BUCKET_BITS.unpack(_ROW.pack(*found)))


def _distinct(ids: np.ndarray) -> np.ndarray:
    """The sorted distinct ids: ``np.unique`` without it, since its first call imports
    ``numpy.ma`` (1.1 MiB resident for good in a server)."""
    ordered = np.sort(ids)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
