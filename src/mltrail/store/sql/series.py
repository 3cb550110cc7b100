"""Series reads: raw chunks or the rollup level a chart needs, single or batched.

A read with ``max_points`` costs about ``max_points`` rows whatever the series length (see
:func:`rollups.choose_level`); every read carries the points' wall-clock times.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, select

from mltrail.core import validation
from mltrail.core.chunk_codec import decode_chunks
from mltrail.core.errors import MltrailError, NotFoundError, PermissionDeniedError, ValidationError
from mltrail.core.points import MAX_BATCH_SERIES
from mltrail.core.types import Series, SeriesAnswer, SeriesQuery
from mltrail.store.sql import range_edges, rollup_batch, rollup_levels, rollup_reads, rollups
from mltrail.store.sql.access import Scope, experiment_pk, fetch_tuples
from mltrail.store.sql.chunks import iteration_order
from mltrail.store.sql.engine import DriverStatement
from mltrail.store.sql.tables import experiments, metric_chunks, metric_series, project_members

_INT64 = (-(2**63), 2**63 - 1)


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
    """Full series (iteration order, ties in arrival order) or, with ``max_points``, a min/max
    downsampled view whose cost depends on ``max_points`` only. ``start``/``end`` (inclusive
    iterations) keep only that range, read from the chunks or rollup buckets overlapping it
    (see :func:`_read_range`).
    Every read carries the points' wall-clock times (``Series.times``).
    """
    key = validation.metric_key(key)
    phase = validation.phase(phase)
    if max_points is not None:
        max_points = validation.require_int(max_points, "max_points", minimum=2)
    bounds = _iteration_bounds(start, end)
    pk = experiment_pk(conn, scope, *ref)
    row = _SERIES_ROW.first(conn, {"pk": pk, "key": key, "phase": phase})
    if row is None or row[1] == 0:
        raise NotFoundError(f"experiment {ref[1]} has no series {phase}/{key}", "key")
    series_id, total = row
    return read_stored(
        conn, Series(key, phase, *_EMPTY, total, False), series_id, max_points, bounds
    )


# built once: building the statement (and its cache key) per read cost more than running it
_SERIES_ROW = DriverStatement(
    select(metric_series.c.id, metric_series.c.count).where(
        metric_series.c.experiment_id == bindparam("pk"),
        metric_series.c.key == bindparam("key"),
        metric_series.c.phase == bindparam("phase"),
    )
)


def read_stored(
    conn: Connection,
    empty: Series,
    series_id: int,
    max_points: int | None,
    bounds: tuple[int, int] | None,
    table: rollup_reads.Table | None = None,
) -> SeriesRead:
    """The read of :func:`read_series` once the series row is found (``empty`` names it);
    ``table``: the level's buckets when already fetched (a batched read fetches every
    series' at once)."""
    if bounds is not None:
        return _read_range(conn, empty, series_id, max_points, bounds)
    level = 0 if max_points is None else rollups.choose_level(empty.total, max_points)
    if level == 0:
        cols, rows = _read_raw(conn, series_id)
        if max_points is None or len(cols[0]) <= max_points:
            return SeriesRead(_with(empty, cols, False), 0, rows)
        items = _raw_items(cols)
    else:
        if table is None:
            table = rollup_levels.level_tables(conn, level, [series_id])[series_id]
        items, rows = _level_items(table), len(table["bucket"])
    assert max_points is not None  # without it, the raw branch returned
    return SeriesRead(_with(empty, rollups.downsample(items, max_points), True), level, rows)


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
    (each chunk is stored in iteration order, so those are its range); a downsampled
    read uses the coarsest rollup level with enough buckets in the range for ``max_points``
    (raw points when even the first level has too few), so a zoomed view costs what a whole
    read of that many points costs, whatever the series length.
    """
    level, table = 0, None
    if max_points is not None:
        level, table = _range_level(conn, series_id, bounds, max_points)
    if level == 0:
        cols, rows = _read_inside(conn, series_id, bounds)
        if max_points is None or len(cols[0]) <= max_points:
            return SeriesRead(_with(empty, cols, False), 0, rows)
        items = _raw_items(cols)
    else:
        assert table is not None
        # buckets straddling an end are split down to their points inside the range
        read_raw = functools.partial(_read_inside, conn, series_id)
        items, rows = range_edges.in_range_items(conn, series_id, level, table, bounds, read_raw)
    assert max_points is not None  # without it, the raw branch returned
    return SeriesRead(_with(empty, rollups.downsample(items, max_points), True), level, rows)


def _range_level(
    conn: Connection, series_id: int, bounds: tuple[int, int], max_points: int
) -> tuple[int, rollup_reads.Table | None]:
    """The coarsest level with at least :func:`rollups.groups_for` buckets overlapping
    ``bounds``, and those buckets; ``(0, None)`` when even the first level has fewer, or when
    points logged out of iteration order make more than the two edge buckets straddle the
    range (the range's raw points are read).

    Walks from the coarsest level down, each level's buckets confined to the span found at
    the level above, so every read touches a bounded number of buckets.
    """
    groups = rollups.groups_for(max_points)
    span: tuple[int, int] | None = None  # bucket numbers to look at, at the next level
    first: int | None = None  # ordinals of the points to look at
    last: int | None = None
    for level in range(len(rollups.LEVEL_SIZES), 0, -1):
        size = rollups.LEVEL_SIZES[level - 1]
        if first is not None and last is not None:
            span = (first // size, last // size)
        table = rollup_reads.level_range(conn, series_id, level, bounds, span)
        count = len(table["bucket"])
        if not count:
            continue
        # buckets holding points outside the range: only the two edge ones when iterations
        # grew as they arrived; more means points came out of order, and the range's extremes
        # may hide behind outside ones, so the range is read raw instead
        outside = (table["first_iteration"] < bounds[0]) | (table["last_iteration"] > bounds[1])
        if int(outside.sum()) > 2:
            return 0, None
        if count >= groups:
            return level, table
        b0, b1 = int(table["bucket"][0]), int(table["bucket"][-1])
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
    rows = fetch_tuples(conn, query)
    it, ep, v, t = decode_chunks(rows)
    order = iteration_order(it)  # each chunk is in order, but a later batch may go back
    if order is not None:
        it, ep, v, t = it[order], ep[order], v[order], t[order]
    return (it, ep, v, t), len(rows)


def _read_inside(conn: Connection, series_id: int, bounds: tuple[int, int]) -> tuple[Columns, int]:
    """The raw points with iterations in ``bounds``, in iteration order, and the rows read."""
    cols, rows = _read_raw(conn, series_id, bounds)
    keep = (cols[0] >= bounds[0]) & (cols[0] <= bounds[1])
    return (cols[0][keep], cols[1][keep], cols[2][keep], cols[3][keep]), rows


def _level_items(table: rollup_reads.Table) -> dict[str, np.ndarray]:
    """A level's buckets as :func:`rollups.downsample` reads them (times in seconds).

    Downsampling takes min and max of every bucket but only the first point of the first
    bucket and the last point of the last one: those are the lowest and highest iteration,
    earliest and latest to arrive among equals (the first and last bucket's unless points
    were logged out of iteration order), broadcast over the buckets.
    """
    m = len(table["bucket"])
    items = {f"{p}_{f}": table[f"{p}_{f}"] for p in ("min", "max") for f in rollups.POINT_FIELDS}
    ends = (
        ("first", int(np.lexsort((table["bucket"], table["first_iteration"]))[0])),
        ("last", int(np.lexsort((table["bucket"], table["last_iteration"]))[-1])),
    )
    for part, i in ends:
        for f in rollups.POINT_FIELDS:
            # read only at index 0 (first) and m - 1 (last): one value broadcast over all
            items[f"{part}_{f}"] = np.broadcast_to(table[f"{part}_{f}"][i], (m,))
    for part in rollups.PARTS:
        items[f"{part}_time"] = items[f"{part}_time"] / 1000.0  # stored in milliseconds
    return items


def read_series_batch(
    conn: Connection,
    scope: Scope,
    queries: Sequence[SeriesQuery],
    max_points: int,
    span: tuple[Any, Any] = (None, None),
    times: bool = True,
) -> list[SeriesAnswer]:
    """Every series the queries name, each read as :func:`read_series` reads it, in one
    transaction: the experiments are checked once each and their series found in one query;
    the series read from a rollup level are fetched and downsampled together, a level at a
    time (:func:`rollup_batch.downsample_level`). ``times``: False leaves them out.

    An entry whose experiment or series is missing (or not the user's) answers an error in
    its place; the others are read. Series come in query order, an experiment's in
    (phase, key) order.
    """
    max_points = validation.require_int(max_points, "max_points", minimum=2)
    bounds = _iteration_bounds(*span)
    pks = _experiment_pks(conn, scope, [(q.project_id, q.experiment_id) for q in queries])
    rows = _series_rows(conn, [pk for pk in pks.values() if isinstance(pk, int)])
    plan: list[tuple[SeriesQuery, Any]] = []  # (query, series row or the error answered)
    for q in queries:
        pk = pks[(q.project_id, q.experiment_id)]
        if isinstance(pk, MltrailError):
            plan.append((q, pk))
            continue
        matching = [r for r in rows.get(pk, []) if _matches(q, r)]
        if q.key is not None and not matching:
            phase = q.phase or "train"
            plan.append(
                (q, NotFoundError(f"experiment {q.experiment_id} has no series {phase}/{q.key}"))
            )
        plan += [(q, r) for r in matching]
    if len(plan) > MAX_BATCH_SERIES:
        raise ValidationError(
            f"names {len(plan):,} series, at most {MAX_BATCH_SERIES:,} per request",
            "series",
        )
    tables: dict[int, rollup_reads.Table] = {}
    ready: dict[int, rollup_batch.Points] = {}
    if bounds is None:  # every series' level read at once: two queries per level
        levels: dict[int, list[int]] = {}
        for _, found in plan:
            if not isinstance(found, MltrailError):
                level = rollups.choose_level(found.count, max_points)
                if level:
                    levels.setdefault(level, []).append(found.id)
        for level, ids in levels.items():
            if max_points < 4:  # only the ends kept: rollups.downsample's own case
                tables.update(rollup_levels.level_tables(conn, level, ids))
            else:
                found = rollup_levels.level_columns(conn, level, ids)
                ready.update(rollup_batch.downsample_level(found, max_points, times))
    read = functools.partial(_answer, conn, max_points=max_points, bounds=bounds, times=times)
    return [read(q, found, tables=tables, ready=ready) for q, found in plan]


def _experiment_pks(
    conn: Connection, scope: Scope, refs: list[tuple[Any, Any]]
) -> dict[tuple[Any, Any], int | MltrailError]:
    """Each (project, experiment)'s key as :func:`experiment_pk` finds it, or the error it
    raises for a missing or forbidden one: one query per project for the common case (a
    compare view's 100 runs), :func:`experiment_pk` itself for what that does not find."""
    pks: dict[tuple[Any, Any], int | MltrailError] = {}
    if scope.grant is None:
        numbers: dict[int, set[int]] = {}
        for pid, number in refs:
            if _small_id(pid) and _small_id(number):
                numbers.setdefault(pid, set()).add(number)
        e = experiments.c
        parts = [(pid, sorted(wanted)[i : i + 500]) for pid, wanted in numbers.items()
                 for i in range(0, len(wanted), 500)]  # fmt: skip
        for pid, part in parts:  # (SQLite bounds a statement's parameters)
            query = select(e.number, e.id).where(e.project_id == pid, e.number.in_(part))
            if not scope.sees_all:
                assert scope.user is not None
                members = select(project_members.c.project_id).where(
                    project_members.c.user_id == scope.user.id
                )
                query = query.where(e.project_id.in_(members))
            pks.update({(pid, number): pk for number, pk in conn.execute(query).all()})
    for ref in refs:
        if ref not in pks:
            try:
                pks[ref] = experiment_pk(conn, scope, *ref)
            except (NotFoundError, PermissionDeniedError) as exc:
                pks[ref] = exc
    return pks


def _small_id(value: Any) -> bool:
    return type(value) is int and 1 <= value <= validation.MAX_DB_ID


def _answer(
    conn: Connection,
    q: SeriesQuery,
    found: Any,
    *,
    max_points: int,
    bounds: tuple[int, int] | None,
    times: bool,
    tables: dict[int, rollup_reads.Table],
    ready: dict[int, rollup_batch.Points],
) -> SeriesAnswer:
    if isinstance(found, MltrailError):
        phase = q.phase or ("train" if q.key is not None else None)
        return SeriesAnswer(
            q.project_id, q.experiment_id, q.key, phase, error=found.kind, message=found.message
        )
    if found.id in ready:  # downsampled with its level's other series (times when asked)
        it, ep, v, t = ready[found.id]
        read = Series(found.key, found.phase, it, ep, v, found.count, True, t)
    else:
        empty = Series(found.key, found.phase, *_EMPTY, found.count, False)
        table = tables.get(found.id)
        read = read_stored(conn, empty, found.id, max_points, bounds, table).series
        read = read if times else replace(read, times=None)
    return SeriesAnswer(q.project_id, q.experiment_id, found.key, found.phase, read)


def _series_rows(conn: Connection, pks: list[int]) -> dict[int, list[Any]]:
    """The non-empty series of the experiments, by experiment, in (phase, key) order."""
    s = metric_series.c
    found: dict[int, list[Any]] = {pk: [] for pk in pks}
    for start in range(0, len(pks), 500):  # SQLite bounds a statement's parameters
        query = (
            select(s.id, s.experiment_id, s.key, s.phase, s.count)
            .where(s.experiment_id.in_(pks[start : start + 500]), s.count > 0)
            .order_by(s.experiment_id, s.phase, s.key)
        )
        for row in conn.execute(query):
            found[row.experiment_id].append(row)
    return found


def _matches(q: SeriesQuery, row: Any) -> bool:
    if q.key is not None:
        return bool(row.key == q.key and row.phase == (q.phase or "train"))
    return q.phase is None or row.phase == q.phase
