"""Metric points: packed chunks, summaries and rollups written on ingest (reads: series.py).

A batch writes, per series, one chunk row holding its columns packed and zlib-compressed
(:mod:`chunks`, not one row per point), folds the points into the series summary and into
every rollup level, all in the caller's transaction.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, select

from mltrail.core.chunk_codec import packed_data
from mltrail.core.points import batch_chunk_count, series_chunks
from mltrail.core.types import (
    MetricBatch,
    MetricSummary,
    Series,
    SeriesAnswer,
    SeriesChunk,
    SeriesQuery,
)
from mltrail.store.points import PointStore
from mltrail.store.sql import rollup_tails, rollups
from mltrail.store.sql.access import Scope, SqlNoun, experiment_pk, touched_experiment_pk
from mltrail.store.sql.batches import claim_batch
from mltrail.store.sql.chunks import COMPACTED_BELOW, compact_after_append, iteration_order
from mltrail.store.sql.engine import Database, driver_tuples
from mltrail.store.sql.rollup_sealing import Fresh, seal_blocks, store_blocks
from mltrail.store.sql.series import read_series, read_series_batch
from mltrail.store.sql.tables import metric_chunks, metric_series


def _merge_chunks(chunks: list[SeriesChunk]) -> list[SeriesChunk]:
    """One chunk per (key, phase), concatenated in batch order and then put in iteration
    order (stable: a re-logged iteration's points keep their arrival order). Every chunk
    stored is thus in order, its first and last iterations its range."""
    grouped: dict[tuple[str, str], list[SeriesChunk]] = {}
    for chunk in chunks:
        grouped.setdefault((chunk.key, chunk.phase), []).append(chunk)
    if len(grouped) == len(chunks) > 1 and _all_in_order(chunks):
        return chunks  # the usual batch (the SDK's, MLflow's): nothing to merge or sort
    merged = []
    for (key, phase), parts in grouped.items():
        cols = [
            np.concatenate([getattr(p, c) for p in parts])
            if len(parts) > 1
            else getattr(parts[0], c)
            for c in ("iterations", "epochs", "values", "times")
        ]
        order = iteration_order(cols[0])
        if order is not None:
            cols = [c[order] for c in cols]
        if len(parts) == 1 and order is None:
            merged.append(parts[0])
        else:
            merged.append(SeriesChunk(key, phase, cols[0], cols[1], cols[2], cols[3]))
    return merged


def _all_in_order(chunks: list[SeriesChunk]) -> bool:
    """Whether every chunk's iterations are in order (one check for all of them)."""
    iterations = np.concatenate([c.iterations for c in chunks])
    back = iterations[1:] < iterations[:-1]
    back[np.cumsum([len(c) for c in chunks[:-1]]) - 1] = False  # from one chunk to the next
    return not back.any()


class PackedBatch:
    """A batch checked, merged into one chunk per series and packed as stored: the work of an
    append that needs nothing stored, done before its write transaction (so a concurrent
    append's transaction runs meanwhile: the packing's zlib releases the GIL). A chunk stored
    as it came keeps its ``packed`` bytes (the SDK packs, see :mod:`mltrail.core.chunk_codec`);
    a merged or reordered one is packed here, not deflated when small (a compaction packs it
    again, see :data:`~mltrail.store.sql.chunks.COMPACTED_BELOW`)."""

    def __init__(self, batch: MetricBatch) -> None:
        self.client_id, self.seq = batch.client_id, batch.seq
        self.chunks = _merge_chunks(series_chunks(batch.chunks))
        self.data = packed_data(self.chunks, COMPACTED_BELOW, narrow=True)


def append_points(
    conn: Connection,
    db: Database,
    scope: Scope,
    ref: tuple[Any, Any],
    batch: MetricBatch | PackedBatch,
) -> int:
    """Store a batch once; returns the points stored (0 for a replayed (client_id, seq)).
    A batch without a client_id keeps no receipt: a receipt nobody can replay was a row per
    MLflow request, kept for good, and one statement more for each one-point append."""
    packed = batch if isinstance(batch, PackedBatch) else PackedBatch(batch)
    chunks = packed.chunks
    pk = touched_experiment_pk(conn, scope, *ref, now=db.clock())  # its last activity
    if packed.client_id is not None and not claim_batch(
        conn,
        db,
        pk,
        "points",
        packed.client_id,
        packed.seq,
        locked=True,  # touched: locked
    ):
        return 0
    if not chunks:
        return 0
    series = _lock_series(conn, db, pk, chunks)
    rows = [series[(c.key, c.phase)] for c in chunks]
    writes = _Writes(rows, chunks, packed.data)
    stored = rollup_tails.fetch_tails(conn, [r.id for r in rows])
    writes.add_rollups(_stored_partials(stored, rows))
    grown = [(r.id, r.count, r.count + len(c)) for r, c in zip(rows, chunks, strict=True)]
    blocks = seal_blocks(stored, grown, writes.fresh, db.is_sqlite)
    writes.flush(conn, db, stored, {(s, level, k) for s, level, k, *_ in blocks})
    compact_after_append(conn, grown)
    store_blocks(conn, db, blocks)
    return sum(len(c) for c in chunks)


def _lock_series(
    conn: Connection, db: Database, pk: int, chunks: list[SeriesChunk]
) -> dict[tuple[str, str], Any]:
    """Lock all of the batch's series for the append, creating the missing ones first (one
    statement when they all exist, as they do after a run's first batch)."""
    params = {"pk": pk, "keys": sorted({c.key for c in chunks})}
    found = _series_rows(conn, params)
    missing = [c for c in chunks if (c.key, c.phase) not in found]
    if not missing:
        return found
    stmt = db.insert(metric_series).on_conflict_do_nothing(
        index_elements=["experiment_id", "key", "phase"]
    )
    rows = [{"experiment_id": pk, "key": c.key, "phase": c.phase, "count": 0} for c in missing]
    conn.execute(stmt, rows)
    return _series_rows(conn, params)


# a locked series row as a plain named tuple: an append reads its fields a few hundred times,
# and a SQLAlchemy Row's attribute lookup cost more than the lookups' work
SeriesRow = namedtuple("SeriesRow", list(metric_series.c.keys()))  # type: ignore[misc]


def _series_rows(conn: Connection, params: dict[str, Any]) -> dict[tuple[str, str], Any]:
    found: Sequence[Any]
    if conn.dialect.name == "sqlite":  # no row locks to take: the driver's rows, as they come
        found = driver_tuples(conn, _series_rows_sql(len(params["keys"])),
                              (params["pk"], *params["keys"]))  # fmt: skip
    else:
        found = conn.execute(_LOCK_SERIES, params).all()
    rows: list[Any] = [SeriesRow(*r) for r in found]
    return {(r.key, r.phase): r for r in rows}


@functools.lru_cache(maxsize=64)
def _series_rows_sql(keys: int) -> str:
    """:data:`_LOCK_SERIES` as SQLite runs it (SQLAlchemy's expanding IN and result handling
    cost an append more than the statement: there is no type to convert on SQLite)."""
    columns = ", ".join(f'"{column.name}"' for column in metric_series.c)
    marks = ", ".join("?" * keys)
    return (f'SELECT {columns} FROM "metric_series" WHERE "experiment_id" = ? '
            f'AND "key" IN ({marks}) ORDER BY "id"')  # fmt: skip


# built once: constructing the statement per append cost more than running it
_LOCK_SERIES = (
    select(metric_series)
    .where(
        metric_series.c.experiment_id == bindparam("pk"),
        metric_series.c.key.in_(bindparam("keys", expanding=True)),
    )
    .order_by(metric_series.c.id)
    .with_for_update()
)


# a stored partial bucket as _stored_partials hands it: its series id, level, then COLUMNS as
# stored (times after the first relative, see rollups.RELATIVE_TIMES; None for NULL)
_PARTIAL_COLUMNS = ("series_id", "level", *rollups.COLUMNS)
Partials = dict[tuple[int, int], tuple[Any, ...]]


def _stored_partials(tails: dict[int, rollup_tails.Tail], rows: list[Any]) -> Partials:
    """The partial last bucket of each level of each series (from its ``tails``, as
    :func:`rollup_tails.fetch_tails` found them), keyed (series_id, level); that of a level
    not stored yet (:func:`rollups.stored_levels`) is the one bucket of the series' coarsest
    stored level."""
    wanted, whole = [], []
    borrowed: dict[tuple[int, int], tuple[int, int]] = {}  # key: the key of the row it takes
    for row in rows:
        top = rollups.stored_levels(row.count)
        for level, size in enumerate(rollups.LEVEL_SIZES[:top], start=1):
            if row.count % size:
                wanted.append((row.id, level, row.count // size))
        if row.count and top < len(rollups.LEVEL_SIZES):  # its one bucket of level top
            borrowed.update(((row.id, level), (row.id, top))
                            for level in range(top + 1, len(rollups.LEVEL_SIZES) + 1))  # fmt: skip
            if row.count == rollups.LEVEL_SIZES[top - 1]:  # complete: no partial of top
                wanted.append((row.id, top, 0))
                whole.append((row.id, top))
    partials = {(r[0], r[1]): r for r in _picked(tails, wanted)}
    if borrowed:
        partials.update((key, partials[at]) for key, at in borrowed.items() if at in partials)
        for key in whole:
            partials.pop(key, None)
    return partials


def _picked(
    tails: dict[int, rollup_tails.Tail], wanted: list[tuple[int, int, int]]
) -> list[tuple[Any, ...]]:
    """The stored buckets ``wanted`` (series id, level, bucket) found in ``tails``, each as
    (series id, level, *COLUMNS). Those of one series (a lone point's append) from its last
    buckets' plain ints (:func:`rollup_tails.last_rows`) when they are the last of their level
    (partials are), the others from the tables (one array for many series)."""
    if len({w[0] for w in wanted}) > 1:
        return _picked_of_tables(tails, [w for w in wanted if w[0] in tails])
    found, others = [], []
    lasts: dict[int, dict[tuple[int, int], tuple[Any, ...]]] = {}
    for key in wanted:
        tail = tails.get(key[0])
        if tail is None:
            continue
        mine = lasts.get(key[0])
        if mine is None:
            mine = lasts[key[0]] = rollup_tails.last_rows(tail)
        row = mine.get(key[1:])
        if row is not None:
            found.append((key[0], *row[:1], *row[2:]))
        else:
            others.append(key)
    return found + _picked_of_tables(tails, others) if others else found


def _picked_of_tables(
    tails: dict[int, rollup_tails.Tail], wanted: list[tuple[int, int, int]]
) -> list[tuple[Any, ...]]:
    """:func:`_picked` from the tails' tables."""
    mine = list(dict.fromkeys(w[0] for w in wanted))
    if not mine:
        return []
    joined = np.concatenate([tails[s].table for s in mine], axis=1)
    owners = np.repeat(mine, [tails[s].table.shape[1] for s in mine]).tolist()
    asked = set(wanted)
    keys = zip(owners, joined[0].tolist(), joined[1].tolist(), strict=True)
    at = [i for i, key in enumerate(keys) if key in asked]
    rows = rollup_tails.as_rows(joined[:, at])
    return [(owners[i], row[0], *row[2:]) for i, row in zip(at, rows, strict=True)]


def _partial_columns(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Stored partials as columns (:func:`rollups.merge_stored`'s ``stored``), times absolute
    (NaN for NULL, as :func:`rollups.absolute_times` gives None)."""
    columns: dict[str, Any] = dict(zip(_PARTIAL_COLUMNS, zip(*rows, strict=True), strict=True))
    first = np.array(columns["first_time"], np.float64)
    for name in rollups.RELATIVE_TIMES:
        columns[name] = np.array(columns[name], np.float64) + first
    return columns


class _Writes:
    """Rows of a whole batch (all its series), written with one executemany per statement.

    Rollups are computed for every series of the batch at once, level by level.
    """

    def __init__(
        self, rows: list[Any], chunks: list[SeriesChunk], data: list[bytes] | None = None
    ) -> None:
        self.rows = rows
        self.chunks = chunks
        self.data = data  # each chunk packed (packed_data), when done before the transaction
        self.series_ids = np.array([r.id for r in rows], dtype=np.int64)
        # a lone point's buckets: each level's (series id, number, COLUMNS as stored), and
        # those of its stored levels as rollup_tails takes them (series id, level, bucket, ...)
        self.levels: dict[int, Any] = {}
        self.lone_rows: list[tuple[Any, ...]] = []
        # the array path's buckets of every level: series ids, columns, each level's slice,
        # and which of them are of levels their series stores
        self.stacked: tuple[np.ndarray, rollups.Buckets, list[slice], np.ndarray] | None = None

    def chunk_rows(self) -> list[tuple[Any, ...]]:
        """Rows of :data:`_CHUNK_COLUMNS`, one per series."""
        data = self.data or packed_data(self.chunks, narrow=True)
        return [
            (row.id, row.count, len(chunk), int(chunk.iterations[0]), int(chunk.iterations[-1]),
             packed)
            for row, chunk, packed in zip(self.rows, self.chunks, data, strict=True)
        ]  # fmt: skip

    def add_rollups(self, stored: Partials) -> None:
        """Every level's buckets of the batch, merged with the ``stored`` partials, those of
        levels the series does not store yet left out (:func:`rollups.stored_levels`)."""
        if len(self.chunks) == 1 and len(self.chunks[0]) == 1:
            self.add_lone_rollups(stored)  # a synchronous log_metric: no arrays
        else:
            self.add_array_rollups(stored)

    def add_lone_rollups(self, stored: Partials) -> None:
        """:meth:`add_array_rollups` for a batch of one point, in plain Python."""
        row, chunk = self.rows[0], self.chunks[0]
        # ms rounded half to even, as add_array_rollups' np.round (and without its arrays)
        millis = round(float(chunk.times[0]) * 1000.0)
        point = (int(chunk.iterations[0]), int(chunk.epochs[0]), float(chunk.values[0]),
                 millis)  # fmt: skip
        mine = {level: rollups.absolute_times(p[2:]) for (series_id, level), p in stored.items()
                if series_id == row.id}  # fmt: skip
        series_id, top = int(row.id), rollups.stored_levels(row.count + 1)
        for level, number, bucket in rollups.lone_point_rows(row.count, point, mine):
            self.levels[level] = (series_id, number, bucket)
            if level <= top:
                self.lone_rows.append((series_id, level, number, *bucket))

    def add_array_rollups(self, stored: Partials) -> None:
        """The buckets of any batch, all its series and levels at once: level 1 from the
        points, the coarser levels folded from it together, every stored partial merged in
        with one call."""
        sizes = rollups.LEVEL_SIZES
        counts = [r.count for r in self.rows]  # the points each series held before
        fine = rollups.batch_buckets(counts, self.chunks, sizes[0])
        buckets, spans = rollups.all_levels(fine, sizes)
        owners, levels = self.series_ids[buckets["series"]], buckets["level"]
        # each (series, level)'s first bucket: the one a stored partial of it merges into
        firsts = np.flatnonzero(rollups.changes(buckets["series"]) | rollups.changes(levels))
        mine = zip(firsts.tolist(), owners[firsts].tolist(), levels[firsts].tolist(), strict=True)
        picked = [(i, (s, level)) for i, s, level in mine if (s, level) in stored]
        if picked:
            at = np.array([i for i, _ in picked], np.intp)
            rollups.merge_stored(buckets, at, _partial_columns([stored[k] for _, k in picked]))
        tops = [rollups.stored_levels(r.count + len(c)) for r, c in zip(self.rows, self.chunks,
                                                                          strict=True)]  # fmt: skip
        kept = levels <= np.array(tops, np.int64)[buckets["series"]]
        self.stacked = (owners, buckets, spans, kept)

    def fresh(self, level: int) -> Fresh:
        """The buckets of ``level`` (see :func:`seal_blocks`), as stored."""
        if self.stacked is None:  # a lone point's
            series_id, number, bucket = self.levels[level]
            return np.array([series_id]), np.array([number]), [np.array([v]) for v in bucket]
        owners, buckets, spans, _ = self.stacked
        span = spans[level - 1]
        columns = [rollups.stored_column(buckets, name)[span] for name in rollups.COLUMNS]
        return owners[span], buckets["bucket"][span], columns

    def changed(self, sqlite: bool) -> np.ndarray:
        """The buckets of the batch's stored levels as :func:`rollup_tails.write` takes them."""
        if self.stacked is None:
            return rollup_tails.from_rows(self.lone_rows, sqlite, lead=1 + rollup_tails.KEYS)
        owners, buckets, _, kept = self.stacked
        columns = [rollups.stored_column(buckets, name)[kept] for name in rollups.COLUMNS]
        keys = [owners[kept], buckets["level"][kept], buckets["bucket"][kept]]
        return rollup_tails.from_columns(keys, columns, sqlite)

    def flush(
        self,
        conn: Connection,
        db: Database,
        tails: dict[int, rollup_tails.Tail],
        sealed: set[tuple[int, int, int]] | None = None,
    ) -> None:
        """Every row of the batch, one executemany per statement (through the driver on
        SQLite: SQLAlchemy's per-row parameter handling cost more than the statements), and
        each series' tails (:mod:`rollup_tails`, over the stored ``tails``) but the buckets of
        the ``sealed`` blocks (series id, level, block): they are packed instead."""
        db.insert_rows(conn, metric_chunks, _CHUNK_COLUMNS, self.chunk_rows())
        summaries = _summaries(self.rows, self.chunks)
        db.update_rows(conn, metric_series, _SUMMARY_COLUMNS, ("id",), summaries)
        lone = self.stacked is None and not sealed and self.lone_rows  # plain Python
        if lone and rollup_tails.write_lone(conn, db, tails, self.lone_rows):
            return
        changed = self.changed(db.is_sqlite)
        rollup_tails.write(conn, db, tails, self.series_ids, changed, sealed or set())


_CHUNK_COLUMNS = ["series_id", "start", "count", "first_iteration", "last_iteration", "data"]
_SUMMARY_COLUMNS = ["count", "last_value", "last_iteration", "last_epoch", "min_value", "max_value"]


def _summaries(rows: list[Any], chunks: list[SeriesChunk]) -> list[tuple[Any, ...]]:
    """Each series row after its chunk (:data:`_SUMMARY_COLUMNS`, then its id), all chunks'
    extremes reduced at once (a chunk at a time, a 20-series batch paid a few hundred numpy
    calls): "last" is the point of the highest iteration (the latest to arrive among equals),
    as MLflow's latest metric is, whatever the arrival order; min and max skip NaN."""
    lows, highs = _chunk_extremes(chunks)
    out = []
    for row, chunk, low, high in zip(rows, chunks, lows, highs, strict=True):
        last = (float(chunk.values[-1]), int(chunk.iterations[-1]), int(chunk.epochs[-1]))
        if row.count and row.last_iteration is not None and row.last_iteration > last[1]:
            last = (row.last_value, row.last_iteration, row.last_epoch)
        # scalar fmin/fmax, as ever: numpy's array loops may pick the other of 0.0 and -0.0
        old_min = np.nan if row.min_value is None else row.min_value
        old_max = np.nan if row.max_value is None else row.max_value
        extremes = (float(np.fmin(old_min, low)), float(np.fmax(old_max, high)))
        out.append((row.count + len(chunk), *last, *extremes, row.id))
    return out


def _chunk_extremes(chunks: list[SeriesChunk]) -> tuple[list[float], list[float]]:
    """Each chunk's smallest and largest non-NaN value (NaN for none). A point's own value is
    both when every chunk holds one (a synchronous log_metric): the numpy reductions of
    :func:`_extremes` were a seventh of such an append's own Python."""
    if all(len(c) == 1 for c in chunks):
        values = [float(c.values[0]) for c in chunks]
        return values, values
    lengths = [len(c) for c in chunks]
    starts = np.cumsum([0, *lengths[:-1]])
    v = np.concatenate([c.values for c in chunks]) if len(chunks) > 1 else chunks[0].values
    new_min, new_max = _extremes(v, starts)
    return new_min.tolist(), new_max.tolist()


def _extremes(v: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest non-NaN value of each segment of ``v`` (NaN for none), each
    reduced as ``np.min`` of the segment's non-NaN values reduces them (which zero of 0.0 and
    -0.0 wins goes by the reduction's order)."""
    finite = ~np.isnan(v)
    counts = np.add.reduceat(finite, starts)
    kept = counts > 0
    if kept.all() and len(counts) and finite.all():
        return np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
    at = (np.cumsum(counts) - counts)[kept]
    low, high = np.full(len(starts), np.nan), np.full(len(starts), np.nan)
    if at.size:
        low[kept] = np.minimum.reduceat(v[finite], at)
        high[kept] = np.maximum.reduceat(v[finite], at)
    return low, high


def _summary_of(row: Any) -> MetricSummary:
    def nan(x: Any) -> float:
        return float("nan") if x is None else float(x)

    epoch = row.last_epoch
    return MetricSummary(
        key=row.key,
        phase=row.phase,
        count=row.count,
        last=nan(row.last_value),
        min=nan(row.min_value),
        max=nan(row.max_value),
        last_iteration=int(row.last_iteration),
        last_epoch=None if epoch is None or epoch < 0 else int(epoch),
    )


def list_series(conn: Connection, scope: Scope, ref: tuple[Any, Any]) -> list[MetricSummary]:
    pk = experiment_pk(conn, scope, *ref)
    query = (
        select(metric_series)
        .where(metric_series.c.experiment_id == pk, metric_series.c.count > 0)
        .order_by(metric_series.c.phase, metric_series.c.key)
    )
    return [_summary_of(r) for r in conn.execute(query)]


class SqlPoints(SqlNoun, PointStore):
    """The metric points half of SqlStore."""

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        batch_chunk_count(len(batch.chunks))  # internal rewrites may hold more
        packed = PackedBatch(batch)  # outside the transaction: needs nothing stored
        with self._db.write() as conn:
            ref = (project_id, experiment_id)
            return append_points(conn, self._db, self._scope, ref, packed)

    def list_series(self, project_id: int, experiment_id: int) -> list[MetricSummary]:
        with self._db.read() as conn:
            return list_series(conn, self._scope, (project_id, experiment_id))

    def read_series(
        self,
        project_id: int,
        experiment_id: int,
        key: str,
        phase: str,
        *,
        max_points: int | None = None,
        start: int | None = None,
        end: int | None = None,
        times: bool = False,
    ) -> Series:
        with self._db.read() as conn:
            ref = (project_id, experiment_id)
            read = read_series(conn, self._scope, ref, key, phase, max_points, start, end)
        return read.series if times else replace(read.series, times=None)

    def read_series_batch(
        self,
        queries: Sequence[SeriesQuery],
        *,
        max_points: int,
        start: int | None = None,
        end: int | None = None,
        times: bool = False,
    ) -> list[SeriesAnswer]:
        with self._db.read() as conn:
            return read_series_batch(conn, self._scope, queries, max_points, (start, end), times)
