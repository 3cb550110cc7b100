"""Metric points: packed chunks, summaries and rollups written on ingest; series reads.

A batch writes, per series, one chunk row holding its columns packed and zlib-compressed
(not one row per point), folds the points into the series summary and into every rollup
level, all in the caller's transaction.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, func, select, tuple_, update

from mltrail.core import validation
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.core.types import MetricBatch, MetricSummary, Series, SeriesChunk
from mltrail.store.points import PointStore
from mltrail.store.sql import rollups
from mltrail.store.sql.access import Scope, SqlNoun, experiment_pk
from mltrail.store.sql.batches import claim_batch
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import experiments, metric_chunks, metric_rollups, metric_series

_COLUMNS = 4  # iteration deltas, epochs, value bits, time deltas (ms): all int64
_PLANES = _COLUMNS * 8
_FORMAT = 1
_HEADER = struct.Struct("<BqqI")  # format, first iteration, first time (ms), constant planes


def _deltas(column: np.ndarray) -> np.ndarray:
    """Deltas with the first slot filled like the second, so regular columns stay constant."""
    out = np.diff(column, prepend=column[:1])
    if len(out) > 1:
        out[0] = out[1]
    return out


def encode_chunk(chunk: SeriesChunk) -> bytes:
    """Pack a chunk's columns into bytes (values bit-exact).

    The four int64 columns are byte-shuffled into 32 byte planes; planes holding one repeated
    byte (regular iterations, a constant epoch, the zero high bytes of small deltas) are stored
    as that byte in the header, the rest are deflated at level 1.
    """
    n = len(chunk)
    millis = np.round(chunk.times * 1000.0).astype(np.int64)
    table = np.empty((_COLUMNS, n), dtype="<i8")
    table[0] = _deltas(chunk.iterations)
    table[1] = chunk.epochs
    table[2] = np.ascontiguousarray(chunk.values, dtype="<f8").view("<i8")
    table[3] = _deltas(millis)
    planes = table.view(np.uint8).reshape(_COLUMNS, n, 8).transpose(0, 2, 1).reshape(_PLANES, n)
    constant = np.all(planes == planes[:, :1], axis=1)
    mask = int(np.packbits(constant, bitorder="little").view("<u4")[0])
    header = _HEADER.pack(_FORMAT, int(chunk.iterations[0]), int(millis[0]), mask)
    body = zlib.compress(np.ascontiguousarray(planes[~constant]).tobytes(), 1)
    return header + planes[constant, 0].tobytes() + body


def decode_chunk(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_chunk`: iterations, epochs, values (bit-exact), times."""
    _format, first_iteration, first_millis, mask = _HEADER.unpack_from(data)
    constant = np.unpackbits(np.array([mask], dtype="<u4").view(np.uint8), bitorder="little")
    constant = constant.astype(bool)
    k = int(constant.sum())
    planes = np.empty((_PLANES, n), dtype=np.uint8)
    planes[constant] = np.frombuffer(data, np.uint8, k, _HEADER.size)[:, None]
    rest = zlib.decompress(data[_HEADER.size + k :])
    planes[~constant] = np.frombuffer(rest, dtype=np.uint8).reshape(-1, n)
    table = (
        planes.reshape(_COLUMNS, 8, n).transpose(0, 2, 1).copy().view("<i8").reshape(_COLUMNS, n)
    )
    iterations = _undelta(table[0], first_iteration)
    values = table[2].view("<f8").astype(np.float64)
    times = _undelta(table[3], first_millis) / 1000.0
    return iterations, table[1].astype(np.int64), values, times


def _undelta(deltas: np.ndarray, first: int) -> np.ndarray:
    out = np.cumsum(deltas)
    out += first - out[0]
    return out


def _merge_chunks(chunks: list[SeriesChunk]) -> list[SeriesChunk]:
    """One chunk per (key, phase), concatenated in batch order; empty ones dropped."""
    grouped: dict[tuple[str, str], list[SeriesChunk]] = {}
    for chunk in chunks:
        if len(chunk):
            grouped.setdefault((chunk.key, chunk.phase), []).append(chunk)
    merged = []
    for (key, phase), parts in grouped.items():
        if len(parts) == 1:
            merged.append(parts[0])
            continue
        cols = [
            np.concatenate([getattr(p, c) for p in parts])
            for c in ("iterations", "epochs", "values", "times")
        ]
        merged.append(SeriesChunk(key, phase, *cols))
    return merged


def append_points(
    conn: Connection, db: Database, scope: Scope, ref: tuple[Any, Any], batch: MetricBatch
) -> int:
    """Store a batch once; returns the points stored (0 for a replayed (client_id, seq))."""
    chunks = _merge_chunks([validation.series_chunk(c) for c in batch.chunks])
    pk = experiment_pk(conn, scope, *ref)
    if not claim_batch(conn, db, pk, "points", batch.client_id, batch.seq):
        return 0
    if not chunks:
        return 0
    series = _lock_series(conn, db, pk, chunks)
    rows = [series[(c.key, c.phase)] for c in chunks]
    writes = _Writes(rows, chunks)
    writes.add_rollups(_stored_partials(conn, rows))
    writes.flush(conn, db)
    conn.execute(update(experiments).where(experiments.c.id == pk).values(updated_at=db.clock()))
    return sum(len(c) for c in chunks)


def _lock_series(
    conn: Connection, db: Database, pk: int, chunks: list[SeriesChunk]
) -> dict[tuple[str, str], Any]:
    """Create missing series rows, then lock all of the batch's series for the append."""
    stmt = db.insert(metric_series).on_conflict_do_nothing(
        index_elements=["experiment_id", "key", "phase"]
    )
    rows = [{"experiment_id": pk, "key": c.key, "phase": c.phase, "count": 0} for c in chunks]
    conn.execute(stmt, rows)
    keys = sorted({c.key for c in chunks})
    query = (
        select(metric_series)
        .where(metric_series.c.experiment_id == pk, metric_series.c.key.in_(keys))
        .order_by(metric_series.c.id)
        .with_for_update()
    )
    return {(r.key, r.phase): r for r in conn.execute(query).all()}  # one fetchall


def _stored_partials(conn: Connection, rows: list[Any]) -> dict[tuple[int, int], dict]:
    """The partial last bucket of each level of each series, keyed (series_id, level)."""
    wanted = [
        (row.id, level, row.count // size)
        for row in rows
        for level, size in enumerate(rollups.LEVEL_SIZES, start=1)
        if row.count % size
    ]
    if not wanted:
        return {}
    key = tuple_(metric_rollups.c.series_id, metric_rollups.c.level, metric_rollups.c.bucket)
    found = conn.execute(select(metric_rollups).where(key.in_(wanted))).mappings().all()
    return {(r["series_id"], r["level"]): dict(r) for r in found}


class _Writes:
    """Rows of a whole batch (all its series), written with one executemany per statement.

    Rollups are computed for every series of the batch at once, level by level.
    """

    def __init__(self, rows: list[Any], chunks: list[SeriesChunk]) -> None:
        self.rows = rows
        self.chunks = chunks
        self.series_ids = np.array([r.id for r in rows], dtype=np.int64)
        self.new_buckets: list[dict[str, Any]] = []
        self.merged_buckets: list[dict[str, Any]] = []

    def chunk_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "series_id": row.id,
                "start": row.count,
                "count": len(chunk),
                "first_iteration": int(chunk.iterations[0]),
                "last_iteration": int(chunk.iterations[-1]),
                "data": encode_chunk(chunk),
            }
            for row, chunk in zip(self.rows, self.chunks, strict=True)
        ]

    def add_rollups(self, stored: dict[tuple[int, int], dict]) -> None:
        lengths = [len(c) for c in self.chunks]
        series = np.repeat(np.arange(len(lengths)), lengths)
        ordinals = np.concatenate(
            [
                np.arange(r.count, r.count + n, dtype=np.int64)
                for r, n in zip(self.rows, lengths, strict=True)
            ]
        )
        it, ep, v, t = (
            np.concatenate([getattr(c, a) for c in self.chunks])
            for a in ("iterations", "epochs", "values", "times")
        )
        millis = np.round(t * 1000.0).astype(np.int64)  # as the chunk codec keeps them
        for level, size in enumerate(rollups.LEVEL_SIZES, start=1):
            buckets = rollups.compute_buckets(series, ordinals, size, it, ep, v, millis)
            is_first = np.r_[True, buckets["series"][1:] != buckets["series"][:-1]]
            merged = np.zeros(len(is_first), dtype=bool)
            for i in np.flatnonzero(is_first).tolist():
                previous = stored.get((self.rows[buckets["series"][i]].id, level))
                if previous is not None:
                    rollups.merge_into(buckets, i, previous)
                    merged[i] = True
            extra = {
                "series_id": self.series_ids[buckets["series"]],
                "level": np.full(len(merged), level),
            }
            for row, was_merged in zip(
                rollups.bucket_rows(buckets, extra), merged.tolist(), strict=True
            ):
                if was_merged:
                    row["b_series_id"] = row.pop("series_id")
                    row["b_level"] = row.pop("level")
                    row["b_bucket"] = row.pop("bucket")
                    self.merged_buckets.append(row)
                else:
                    self.new_buckets.append(row)

    def flush(self, conn: Connection, db: Database) -> None:
        conn.execute(metric_chunks.insert(), self.chunk_rows())
        conn.execute(
            _SERIES_UPDATE, [_summary(r, c) for r, c in zip(self.rows, self.chunks, strict=True)]
        )
        if self.merged_buckets:
            conn.execute(_ROLLUP_UPDATE, self.merged_buckets)
        db.insert_many(conn, metric_rollups, self.new_buckets)


def _summary(row: Any, chunk: SeriesChunk) -> dict[str, Any]:
    v = chunk.values
    finite = v[~np.isnan(v)]
    old_min = np.nan if row.min_value is None else row.min_value
    old_max = np.nan if row.max_value is None else row.max_value
    new_min = float(finite.min()) if finite.size else np.nan
    new_max = float(finite.max()) if finite.size else np.nan
    return {
        "b_id": row.id,
        "count": row.count + len(chunk),
        "last_value": float(v[-1]),
        "last_iteration": int(chunk.iterations[-1]),
        "last_epoch": int(chunk.epochs[-1]),
        "min_value": float(np.fmin(old_min, new_min)),
        "max_value": float(np.fmax(old_max, new_max)),
    }


# executemany UPDATEs: the SET clause comes from each row's keys other than the b_* ones.
_SERIES_UPDATE = update(metric_series).where(metric_series.c.id == bindparam("b_id"))

_ROLLUP_UPDATE = update(metric_rollups).where(
    metric_rollups.c.series_id == bindparam("b_series_id"),
    metric_rollups.c.level == bindparam("b_level"),
    metric_rollups.c.bucket == bindparam("b_bucket"),
)


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


@dataclass(frozen=True)
class SeriesRead:
    """A read series plus how it was read: ``level`` 0 is raw; ``rows`` the rows fetched."""

    series: Series
    level: int
    rows: int


def read_series(
    conn: Connection,
    scope: Scope,
    ref: tuple[Any, Any],
    key: Any,
    phase: Any,
    max_points: Any = None,
    start: Any = None,
    end: Any = None,
) -> SeriesRead:
    """Full series (arrival order) or, with ``max_points``, a min/max downsampled view whose
    cost depends on ``max_points`` only. ``start``/``end`` (inclusive iterations) keep only
    that range, read from the chunks or rollup buckets overlapping it (see :func:`_read_range`).
    Every read carries the points' wall-clock times (``Series.times``).
    """
    key = validation.metric_key(key)
    phase = validation.phase(phase)
    if max_points is not None:
        max_points = validation.require_int(max_points, "max_points", minimum=2)
    bounds = _iteration_bounds(start, end)
    pk = experiment_pk(conn, scope, *ref)
    row = conn.execute(
        select(metric_series.c.id, metric_series.c.count.label("total")).where(
            metric_series.c.experiment_id == pk,
            metric_series.c.key == key,
            metric_series.c.phase == phase,
        )
    ).first()
    if row is None or row.total == 0:
        raise NotFoundError(f"experiment {ref[1]} has no series {phase}/{key}", "key")
    return read_stored(
        conn, Series(key, phase, *_EMPTY, row.total, False), row.id, max_points, bounds
    )


def read_stored(
    conn: Connection,
    empty: Series,
    series_id: int,
    max_points: int | None,
    bounds: tuple[int, int] | None,
) -> SeriesRead:
    """The read of :func:`read_series` once the series row is found (``empty`` names it)."""
    if bounds is not None:
        return _read_range(conn, empty, series_id, max_points, bounds)
    level = 0 if max_points is None else rollups.choose_level(empty.total, max_points)
    if level == 0:
        cols, rows = _read_raw(conn, series_id)
        if max_points is None or len(cols[0]) <= max_points:
            return SeriesRead(_with(empty, cols, False), 0, rows)
        items = _raw_items(cols)
    else:
        items, rows = _read_level(conn, series_id, level)
    assert max_points is not None  # without it, the raw branch returned
    return SeriesRead(_with(empty, rollups.downsample(items, max_points), True), level, rows)


_INT64 = (-(2**63), 2**63 - 1)
_EMPTY = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # iterations, epochs, values, times


def _with(empty: Series, cols: Columns, downsampled: bool) -> Series:
    it, ep, v, t = cols
    return replace(empty, iterations=it, epochs=ep, values=v, times=t, downsampled=downsampled)


def _raw_items(cols: Columns) -> dict[str, np.ndarray]:
    """Raw points as :func:`rollups.downsample` reads them: every part is the point itself."""
    fields = zip(rollups.POINT_FIELDS, cols, strict=True)
    return {f"{p}_{f}": a for f, a in fields for p in rollups.PARTS}


def _iteration_bounds(start: Any, end: Any) -> tuple[int, int] | None:
    """``(start, end)`` as int64 bounds (a missing one open), or None when both are missing."""
    if start is None and end is None:
        return None
    lo = _INT64[0] if start is None else validation.require_int(start, "start")
    hi = _INT64[1] if end is None else validation.require_int(end, "end")
    if hi < lo:
        raise ValidationError(f"must be >= start ({lo}), got {hi}", "end")
    return max(lo, _INT64[0]), min(hi, _INT64[1])


def _read_range(
    conn: Connection, empty: Series, series_id: int, max_points: int | None, bounds: tuple[int, int]
) -> SeriesRead:
    """The points with ``lo <= iteration <= hi``, downsampled to ``max_points`` when given.

    Raw points come from the chunks overlapping the range by their first and last iteration
    (iterations are taken as ascending within a batch, as the SDK logs them); a downsampled
    read uses the coarsest rollup level with enough buckets in the range for ``max_points``
    (raw points when even the first level has too few), so a zoomed view costs what a whole
    read of that many points costs, whatever the series length.
    """
    lo, hi = bounds
    level, span = 0, None
    if max_points is not None:
        level, span = _range_level(conn, series_id, bounds, max_points)
    if level == 0:
        cols, rows = _read_raw(conn, series_id, bounds)
        keep = (cols[0] >= lo) & (cols[0] <= hi)
        cols = (cols[0][keep], cols[1][keep], cols[2][keep], cols[3][keep])
        if max_points is None or len(cols[0]) <= max_points:
            return SeriesRead(_with(empty, cols, False), 0, rows)
        items = _raw_items(cols)
    else:
        assert span is not None
        items, rows = _read_level(conn, series_id, level, (span, bounds))
    assert max_points is not None  # without it, the raw branch returned
    it, ep, v, t = rollups.downsample(items, max_points)
    # edge buckets straddle the range: their first/last/min/max points may lie outside it
    keep = (it >= lo) & (it <= hi)
    return SeriesRead(_with(empty, (it[keep], ep[keep], v[keep], t[keep]), True), level, rows)


def _range_level(
    conn: Connection, series_id: int, bounds: tuple[int, int], max_points: int
) -> tuple[int, tuple[int, int] | None]:
    """The coarsest level with at least :func:`rollups.groups_for` buckets overlapping
    ``bounds``, and that level's span of bucket numbers; ``(0, None)`` when even the first
    level has fewer (the range's raw points are read).

    Walks from the coarsest level down, each level's count confined to the buckets found at
    the level above, so every query touches a bounded number of rows.
    """
    r = metric_rollups.c
    groups = rollups.groups_for(max_points)
    first: int | None = None  # ordinals of the points to look at
    last: int | None = None
    for level in range(len(rollups.LEVEL_SIZES), 0, -1):
        size = rollups.LEVEL_SIZES[level - 1]
        where = [
            r.series_id == series_id,
            r.level == level,
            r.last_iteration >= bounds[0],
            r.first_iteration <= bounds[1],
        ]
        if first is not None and last is not None:
            where += [r.bucket >= first // size, r.bucket <= last // size]
        query = select(func.min(r.bucket), func.max(r.bucket), func.count()).where(*where)
        b0, b1, count = conn.execute(query).one()
        if not count:
            continue
        if count >= groups:
            return level, (b0, b1)
        first, last = b0 * size, (b1 + 1) * size - 1
    return 0, None


def _chunks_overlapping(series_id: int, bounds: tuple[int, int] | None) -> tuple[Any, ...]:
    where = (metric_chunks.c.series_id == series_id,)
    if bounds is None:
        return where
    return (
        *where,
        metric_chunks.c.last_iteration >= bounds[0],
        metric_chunks.c.first_iteration <= bounds[1],
    )


def _read_raw(
    conn: Connection, series_id: int, bounds: tuple[int, int] | None = None
) -> tuple[Columns, int]:
    query = (
        select(metric_chunks.c.data, metric_chunks.c.count)
        .where(*_chunks_overlapping(series_id, bounds))
        .order_by(metric_chunks.c.start)
    )
    decoded = [decode_chunk(data, n) for data, n in _fetch_tuples(conn, query)]
    if not decoded:
        return (*_EMPTY, np.empty(0, dtype=np.float64)), 0
    it, ep, v, t = (np.concatenate([d[i] for d in decoded]) for i in range(4))
    return (it, ep, v, t), len(decoded)


def _read_level(
    conn: Connection,
    series_id: int,
    level: int,
    within: tuple[tuple[int, int], tuple[int, int]] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """A level's buckets as :func:`rollups.downsample` reads them (times in seconds).

    Downsampling takes min and max of every bucket but only the first point of the first
    bucket and the last point of the last one, so the rows carry the min/max columns
    and two one-row queries add those two points: half the values to fetch per row.
    ``within`` = ((first bucket, last bucket), (lo, hi)) keeps the buckets in that ordinal
    span whose iterations overlap ``lo..hi``.
    """
    r = metric_rollups.c
    where: tuple[Any, ...] = (r.series_id == series_id, r.level == level)
    if within is not None:
        (b0, b1), (lo, hi) = within
        where += (r.bucket >= b0, r.bucket <= b1, r.last_iteration >= lo, r.first_iteration <= hi)
    names = [f"{p}_{f}" for p in ("min", "max") for f in rollups.POINT_FIELDS]
    query = select(*(metric_rollups.c[n] for n in names)).where(*where)
    rows = _fetch_tuples(conn, query.order_by(metric_rollups.c.bucket))
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    items = {n: table[:, i] for i, n in enumerate(names)}
    for part, order in (
        ("first", metric_rollups.c.bucket),
        ("last", metric_rollups.c.bucket.desc()),
    ):
        cols = [metric_rollups.c[f"{part}_{f}"] for f in rollups.POINT_FIELDS]
        end = _fetch_tuples(conn, select(*cols).where(*where).order_by(order).limit(1))
        point = np.array(end, dtype=np.float64).reshape(-1)
        for f, value in zip(rollups.POINT_FIELDS, point.tolist(), strict=True):
            # read only at index 0 (first) and len - 1 (last): one value broadcast over all
            items[f"{part}_{f}"] = np.broadcast_to(np.float64(value), (len(rows),))
    for part in rollups.PARTS:
        items[f"{part}_time"] = items[f"{part}_time"] / 1000.0  # stored in milliseconds
    return items, len(rows)


def _fetch_tuples(conn: Connection, query: Any) -> list[tuple[Any, ...]]:
    """All rows of ``query`` as the driver's plain tuples, in one ``fetchall``.

    Iterating a SQLAlchemy result fetches one row per call and wraps each in a Row (numpy
    probing Rows for array attributes is slower still); these columns need no result
    processing (floats, integers, bytes), so the driver's tuples are used as they come.
    """
    result = conn.execute(query)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


class SqlPoints(SqlNoun, PointStore):
    """The metric points half of SqlStore."""

    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        with self._db.write() as conn:
            ref = (project_id, experiment_id)
            return append_points(conn, self._db, self._scope, ref, batch)

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
