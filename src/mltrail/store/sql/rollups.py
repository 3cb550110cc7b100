"""Pre-aggregated resolution levels of a series, and min/max downsampling. Pure numpy.

Level 0 is the raw points; level k >= 1 groups points by arrival ordinal into buckets of
``LEVEL_SIZES[k - 1]`` points. Each bucket keeps n and its first, last, min and max points
(iteration, epoch, value, time in integer milliseconds: NULL for buckets written before
times were kept); first and last are the points of its lowest and highest iteration (the
earliest and the latest to arrive among equals), which are its first and last to arrive
when iterations only grow. Only the last bucket of a level can be partial, so an append merges
into at most one stored bucket per level. min/max ignore NaN; an all-NaN bucket keeps NaN.

A level whose one bucket holds the same points as the finer level's one bucket (a series of at
most ``LEVEL_SIZES[k - 2]`` points at level k) is not stored (:func:`stored_levels`, migration
0024): reads take the finer level, and an append that outgrows it starts the coarser level
from the finer level's bucket.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LEVEL_SIZES = (64, 512, 4096, 32768, 262144)
ITEMS_PER_POINT = 4  # a read scans at most this many items per returned point (see choose_level)
PARTS = ("first", "last", "min", "max")
POINT_FIELDS = ("iteration", "epoch", "value", "time")
COLUMNS = ("n", *(f"{p}_{f}" for p in PARTS for f in POINT_FIELDS))

Buckets = dict[str, np.ndarray]


def groups_for(max_points: int) -> int:
    """How many groups a read of ``max_points`` points cuts its items into (a min and a max
    point each, see :func:`downsample`)."""
    return max(1, (max_points - 2) // 2)


def stored_levels(count: int) -> int:
    """How many levels a series of ``count`` points stores: level k > 1 once the series
    outgrows one bucket of level k - 1 (until then its one bucket would repeat that one)."""
    return 1 + bisect.bisect_left(LEVEL_SIZES, count, hi=len(LEVEL_SIZES) - 1)


def choose_level(total: int, max_points: int) -> int:
    """The coarsest stored level (:func:`stored_levels`) with at least :func:`groups_for`
    buckets (0 = raw points).

    Every group of the downsampling then spans whole buckets (whose min and max are exact) and
    the read still returns about ``max_points`` points. The level above has fewer buckets than
    groups, so a read fetches at most ``8 * groups`` < :data:`ITEMS_PER_POINT` ``* max_points``
    rows; a series whose first level has fewer buckets than groups (under ``64 * groups``
    points: 64,000 for a 2,000-point chart) is read raw instead of coarsely.
    """
    if total <= ITEMS_PER_POINT * max_points:
        return 0
    groups = groups_for(max_points)
    chosen = 0
    for level, size in enumerate(LEVEL_SIZES[: stored_levels(total)], start=1):
        if math.ceil(total / size) < groups:
            break
        chosen = level
    return chosen


def changes(column: np.ndarray) -> np.ndarray:
    """True where an element differs from the one before it, and at the first (``np.r_``
    built the same flags at several times the cost, which a batch paid a few dozen times)."""
    out = np.empty(len(column), dtype=bool)
    out[:1] = True
    np.not_equal(column[1:], column[:-1], out=out[1:])
    return out


def _ends(starts: np.ndarray, n: int) -> np.ndarray:
    """The last index of each segment, given the first ones and the length."""
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:] - 1
    ends[-1:] = n - 1
    return ends


def segment_pick(
    values: np.ndarray, seg: np.ndarray, starts: np.ndarray, pick_max: bool
) -> np.ndarray:
    """Index of the first min (or max) non-NaN value of each segment; first index if all NaN."""
    nan = np.isnan(values)
    reduce = np.maximum if pick_max else np.minimum
    if not nan.any():  # the usual case: no NaN to set aside
        hits = np.flatnonzero(values == reduce.reduceat(values, starts)[seg])
    else:
        filled = np.where(nan, -np.inf if pick_max else np.inf, values)
        best = reduce.reduceat(filled, starts)
        has_value = np.add.reduceat(~nan, starts) > 0
        hits = np.flatnonzero((filled == best[seg]) & (~nan | ~has_value[seg]))
    first_of_segment = changes(seg[hits])
    return hits[first_of_segment]


def _points(prefix: str, idx: np.ndarray, columns: tuple[np.ndarray, ...]) -> Buckets:
    return {f"{prefix}_{f}": c[idx] for f, c in zip(POINT_FIELDS, columns, strict=True)}


def compute_buckets(
    series: np.ndarray,
    ordinals: np.ndarray,
    size: int,
    it: np.ndarray,
    ep: np.ndarray,
    v: np.ndarray,
    millis: np.ndarray | None = None,
) -> Buckets:
    """Buckets of ``size`` points for several series at once.

    Args:
        series: per point, the index of its series (points of a series contiguous, in order).
        ordinals: per point, its arrival ordinal within its series.
        size: the level's bucket size.
        it, ep, v: per point, iteration, epoch (-1 = none) and value.
        millis: per point, its wall-clock time in integer milliseconds (NaN when None).

    Returns:
        Columns per bucket: ``series``, ``bucket`` and :data:`COLUMNS`.
    """
    n = len(v)
    bucket_ids = ordinals // size
    columns = (it, ep, v, np.full(n, np.nan) if millis is None else millis)
    if n == 1:  # a lone point (a synchronous log_metric) is its bucket's every part
        return _lone(series, bucket_ids, np.ones(1, np.intp), {
            f"{part}_{f}": c for part in PARTS for f, c in zip(POINT_FIELDS, columns, strict=True)
        })  # fmt: skip
    change = np.ones(n, dtype=bool)
    change[1:] = (bucket_ids[1:] != bucket_ids[:-1]) | (series[1:] != series[:-1])
    starts = np.flatnonzero(change)
    seg = np.cumsum(change) - 1
    ends = _ends(starts, n)
    out: Buckets = {"series": series[starts], "bucket": bucket_ids[starts], "n": ends - starts + 1}
    out.update(_points("first", starts, columns))
    out.update(_points("last", ends, columns))
    out.update(_points("min", segment_pick(v, seg, starts, False), columns))
    out.update(_points("max", segment_pick(v, seg, starts, True), columns))
    return out


# points whose level-1 buckets are computed together: each point costs about 90 bytes of
# arrays while its buckets are made (series index, ordinal, the four columns, milliseconds,
# bucket ids, the segment arrays), so a 50,000-point batch at once held 4 MiB more at the
# server's peak than slices of this size; a slice keeps a few dozen numpy calls per ~8,000
# points, so many small series still go together
BUCKET_SLICE_POINTS = 8192


def batch_buckets(
    firsts: Sequence[int], chunks: Sequence[Any], size: int, limit: int = BUCKET_SLICE_POINTS
) -> Buckets:
    """:func:`compute_buckets` of several series' new points, ``chunks[i]`` (its
    ``iterations``, ``epochs``, ``values`` and ``times`` in seconds) arriving after the
    ``firsts[i]`` points its series holds; ``series`` indexes ``chunks``.

    The same buckets as one call on every point, made a slice of whole series of about
    ``limit`` points at a time: a bucket never spans two series, so the slices' buckets
    side by side are the whole batch's."""
    parts = []
    for lo, hi in _slices([len(c) for c in chunks], limit):
        mine = chunks[lo:hi]
        lengths = [len(c) for c in mine]
        series = np.repeat(np.arange(lo, hi), lengths)
        ordinals = np.concatenate(
            [np.arange(first, first + n, dtype=np.int64)
             for first, n in zip(firsts[lo:hi], lengths, strict=True)]
        )  # fmt: skip
        it, ep, v, t = (
            np.concatenate([getattr(c, a) for c in mine])
            for a in ("iterations", "epochs", "values", "times")
        )
        millis = np.round(t * 1000.0).astype(np.int64)  # as the chunk codec keeps them
        parts.append(compute_buckets(series, ordinals, size, it, ep, v, millis))
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _slices(lengths: list[int], limit: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` runs of consecutive series of at most ``limit`` points together (a longer
    series alone), none of a single point unless all are (:func:`compute_buckets` takes its
    one-point path only for a batch of one point, as before)."""
    runs, lo, total = [], 0, 0
    for i, n in enumerate(lengths):
        if total >= 2 and total + n > limit:
            runs.append((lo, i))
            lo, total = i, 0
        total += n
    runs.append((lo, len(lengths)))
    if len(runs) > 1 and total < 2:  # a last run of one point joins the run before it
        runs[-2:] = [(runs[-2][0], len(lengths))]
    return runs


def coarser_buckets(fine: Buckets, factor: int) -> Buckets:
    """Buckets ``factor`` times larger, folded from the finer buckets of the same points (those
    :func:`compute_buckets` made, before any stored partial is merged into them).

    The same buckets as :func:`compute_buckets` at the coarser size gives, at a few
    hundredths of the cost: a coarse bucket's first point is its first fine bucket's, its last
    the last one's, its min the min of the first fine bucket holding the smallest value (each
    fine min is the first such point of its bucket, an all-NaN bucket's its first point).
    """
    series, bucket_ids = fine["series"], fine["bucket"] // factor
    if len(series) == 1:
        return _lone(series, bucket_ids, fine["n"], fine)
    return _fold(fine, bucket_ids, (series,))[0]


def all_levels(fine: Buckets, sizes: Sequence[int]) -> tuple[Buckets, list[slice]]:
    """Every level's buckets, one level after another, from ``fine`` (those of ``sizes[0]``,
    as :func:`compute_buckets` made them): each coarser level is :func:`coarser_buckets` of
    ``fine``, all of them folded at once (a level a fold cost a batch its few dozen numpy
    calls four times over). Returns the columns with ``level`` (1 for ``fine``) added, and
    each level's slice of them."""
    m, coarser = len(fine["series"]), len(sizes) - 1
    factors = np.repeat(np.array([size // sizes[0] for size in sizes[1:]], np.int64), m)
    level = np.repeat(np.arange(2, len(sizes) + 1, dtype=np.int64), m)
    # one index taken by every column: an np.tile of each was a third of this function's time
    at = np.tile(np.arange(m), coarser)
    tiled = {name: column[at] for name, column in fine.items()}
    folded, starts = _fold(tiled, tiled["bucket"] // factors, (tiled["series"], level))
    stacked = {name: np.concatenate([fine[name], folded[name]]) for name in fine}
    stacked["level"] = np.concatenate([np.ones(m, np.int64), level[starts]])
    bounds = np.searchsorted(stacked["level"], np.arange(1, len(sizes) + 2)).tolist()
    return stacked, [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)]


def _fold(
    fine: Buckets, bucket_ids: np.ndarray, keys: tuple[np.ndarray, ...]
) -> tuple[Buckets, np.ndarray]:
    """:func:`coarser_buckets` of ``fine`` into ``bucket_ids``, a bucket ending where its id
    or any of ``keys`` changes; and each bucket's first fine bucket."""
    m = len(bucket_ids)
    change = np.ones(m, dtype=bool)
    change[1:] = bucket_ids[1:] != bucket_ids[:-1]
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(change)
    seg = np.cumsum(change) - 1
    ends = _ends(starts, m)
    out: Buckets = {"series": fine["series"][starts], "bucket": bucket_ids[starts],
                    "n": np.add.reduceat(fine["n"], starts)}  # fmt: skip
    for part, idx in (("first", starts), ("last", ends)):
        out.update({f"{part}_{f}": fine[f"{part}_{f}"][idx] for f in POINT_FIELDS})
    for part, pick_max in (("min", False), ("max", True)):
        idx = segment_pick(fine[f"{part}_value"], seg, starts, pick_max)
        out.update({f"{part}_{f}": fine[f"{part}_{f}"][idx] for f in POINT_FIELDS})
    return out, starts


def _lone(
    series: np.ndarray, bucket_ids: np.ndarray, n: np.ndarray, parts: dict[str, np.ndarray]
) -> Buckets:
    """The one bucket of a single point or of a single finer bucket, at a tenth of the
    general path's cost (a one-point append makes one per level). Each column is a copy:
    :func:`merge_into` changes a part in place, which must change nothing else."""
    first = np.zeros(1, dtype=np.intp)
    out: Buckets = {"series": series[first], "bucket": bucket_ids[first], "n": n[first]}
    out.update({f"{p}_{f}": parts[f"{p}_{f}"][first] for p in PARTS for f in POINT_FIELDS})
    return out


def _better(new: float, old: float, pick_max: bool) -> bool:
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    return new > old if pick_max else new < old


def merge_into(buckets: Buckets, i: int, stored: dict[str, Any]) -> None:
    """Fold a stored partial bucket (same series and bucket id) into bucket ``i`` in place:
    :func:`merge_stored` of one partial."""
    merge_stored(buckets, np.array([i], np.intp), {name: [stored.get(name)] for name in COLUMNS})


def merge_stored(buckets: Buckets, at: np.ndarray, stored: dict[str, Sequence[Any]]) -> None:
    """Fold stored partial buckets into buckets ``at`` (one a series, distinct) in place, all
    at once: ``stored[name][k]`` is column ``name`` of the partial of bucket ``at[k]`` (same
    series and bucket id), times absolute, None for NULL.

    The stored points came first, so they win ties: of ``first`` (the lowest iteration) and of
    min/max; ``last`` (the highest iteration) stays the new one unless the stored one is higher
    (points logged out of iteration order).
    """
    buckets["n"][at] += np.array(stored["n"], np.int64)
    first = np.array(stored["first_iteration"], np.int64) <= buckets["first_iteration"][at]
    _copy_points(buckets, at, stored, "first", first)
    last = np.array(stored["last_iteration"], np.int64) > buckets["last_iteration"][at]
    _copy_points(buckets, at, stored, "last", last)
    for part, pick_max in (("min", False), ("max", True)):
        old = np.array(stored[f"{part}_value"], np.float64)  # None: NaN
        new = buckets[f"{part}_value"][at]
        wins = np.isnan(old) | (new > old if pick_max else new < old)
        _copy_points(buckets, at, stored, part, ~(~np.isnan(new) & wins))


def _copy_points(
    buckets: Buckets,
    at: np.ndarray,
    stored: dict[str, Sequence[Any]],
    part: str,
    picked: np.ndarray,
) -> None:
    """Part ``part`` of the ``picked`` stored partials copied into their buckets."""
    if not picked.any():
        return
    rows, which = at[picked], np.flatnonzero(picked)
    for f in ("iteration", "epoch"):
        buckets[f"{part}_{f}"][rows] = np.array(stored[f"{part}_{f}"], np.int64)[which]
    buckets[f"{part}_value"][rows] = np.array(stored[f"{part}_value"], np.float64)[which]
    times = np.array(stored[f"{part}_time"], np.float64)[which]
    column = buckets[f"{part}_time"]
    if column.dtype.kind in "iu" and np.isnan(times).any():
        column = buckets[f"{part}_time"] = column.astype(np.float64)  # room for NaN
    column[rows] = times


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


# A bucket's first time is stored as unix milliseconds, its other times as milliseconds after
# it: small whole numbers, which SQLite stores in one to three bytes instead of six.
RELATIVE_TIMES = ("last_time", "min_time", "max_time")
# A bucket as a list of COLUMNS' values (a lone point's): where each part's four fields start
# (iteration, epoch, value, time), and where the times kept relative to the first one are
_FIRST, _LAST, _MIN, _MAX = (COLUMNS.index(f"{part}_iteration") for part in PARTS)
_RELATIVE = tuple(COLUMNS.index(name) for name in RELATIVE_TIMES)
_FIRST_TIME = COLUMNS.index("first_time")


def stored_column(buckets: Buckets, name: str) -> np.ndarray:
    """Column ``name`` as stored (see :data:`RELATIVE_TIMES`)."""
    if name in RELATIVE_TIMES:
        return buckets[name] - buckets["first_time"]
    return buckets[name]


def absolute_times(columns: Sequence[Any]) -> list[Any]:
    """A stored bucket's :data:`COLUMNS` with its times made absolute again (NULL stays
    NULL)."""
    found = list(columns)
    first = found[_FIRST_TIME]
    for at in _RELATIVE:
        found[at] = None if first is None or found[at] is None else found[at] + first
    return found


def bucket_rows(
    buckets: Buckets, extra: dict[str, np.ndarray], levels: Sequence[slice] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and plain-Python row tuples as stored (NaN kept as float NaN):
    ``bucket``, :data:`COLUMNS` and the ``extra`` columns (tuples: a dict per row cost more
    than the insert). With the ``levels`` of buckets of several levels (:func:`all_levels`),
    each level's times are listed as that level's buckets alone list them: integers unless a
    stored partial brought a NULL time (NaN) into that level."""
    names = ["bucket", *COLUMNS, *extra]
    columns = [
        _listed(stored_column(buckets, name), levels if name.endswith("_time") else None)
        for name in ["bucket", *COLUMNS]
    ]
    columns += [np.asarray(col).tolist() for col in extra.values()]
    return names, list(zip(*columns, strict=True))


def _listed(column: np.ndarray, levels: Sequence[slice] | None) -> list[Any]:
    if levels is None or column.dtype.kind != "f":
        return column.tolist()
    out: list[Any] = []
    for level in levels:
        part = column[level]
        out += part.tolist() if np.isnan(part).any() else part.astype(np.int64).tolist()
    return out


Points = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def downsample(items: Buckets, max_points: int) -> Points:
    """At most ``max_points`` points: per group of items its min and max point, plus the very
    first and very last point, sorted by iteration.

    ``items`` has the point columns of :data:`COLUMNS` (raw points: all four parts equal; the
    ``*_time`` ones may be missing: NaN). Returns iterations, epochs, values and times (ms).
    """
    m = len(items["min_value"])
    first, last = ("first", np.zeros(1, np.intp)), ("last", np.full(1, m - 1, np.intp))
    if max_points < 4 or not m:
        return _finish(_gather(items, [first, last] if m else []), max_points)
    groups = max(1, min(groups_for(max_points), m))
    starts = (np.arange(groups, dtype=np.int64) * m) // groups
    change = np.zeros(m, dtype=bool)
    change[starts] = True
    seg = np.cumsum(change) - 1
    picks = [first]
    for part, pick_max in (("min", False), ("max", True)):
        idx = segment_pick(np.asarray(items[f"{part}_value"], np.float64), seg, starts, pick_max)
        picks.append((part, idx))
    picks.append(last)
    return _finish(_gather(items, picks), max_points)


def _gather(items: Buckets, picks: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """The (2, k) int64 array of iteration and epoch (exact past 2^53) and the (2, k) float64
    one of value and time (NaN when not given) of the picked items, each pick a part and the
    indexes of its items, in that order."""
    k = sum(len(idx) for _, idx in picks)
    out = (np.empty((2, k), np.int64), np.empty((2, k)))
    for row, f in enumerate(POINT_FIELDS):
        at, target = 0, out[row // 2][row % 2]
        for part, idx in picks:
            column = items.get(f"{part}_{f}")
            target[at : at + len(idx)] = np.nan if column is None else column[idx]
            at += len(idx)
    return out


def _finish(points: tuple[np.ndarray, ...], max_points: int) -> Points:
    # sorted by (iteration, epoch), ties kept in order: a stable sort by iteration alone is
    # that (and merges the picks' few sorted runs fast) unless an iteration's epochs go back
    ints, floats = points
    order = np.argsort(ints[0], kind="stable")
    it, ep = ints[0, order], ints[1, order]
    if np.any((it[1:] == it[:-1]) & (ep[1:] < ep[:-1])):
        order = np.lexsort((ints[1], ints[0]))
    ints, floats = ints[:, order], floats[:, order]
    if ints.shape[1] > 1:
        same = (ints[0, 1:] == ints[0, :-1]) & (ints[1, 1:] == ints[1, :-1])
        same &= (floats[0, 1:] == floats[0, :-1]) | (
            np.isnan(floats[0, 1:]) & np.isnan(floats[0, :-1])
        )
        keep = np.r_[True, ~same]
        ints, floats = ints[:, keep], floats[:, keep]
    if ints.shape[1] > max_points:
        keep = np.r_[np.arange(max_points - 1), ints.shape[1] - 1]
        ints, floats = ints[:, keep], floats[:, keep]
    return ints[0], ints[1], floats[0], floats[1]


def lone_point_rows(
    ordinal: int, point: tuple[Any, ...], stored: Mapping[int, Sequence[Any]]
) -> list[tuple[int, int, list[Any]]]:
    """Each level's bucket of one point at ``ordinal`` (iteration, epoch, value, integer ms),
    as plain Python, with the stored partial of that level (``stored[level]``: its
    :data:`COLUMNS`, times absolute) merged in as :func:`merge_into` merges it:
    ``(level, bucket number, COLUMNS as stored)`` per level.

    The same rows :func:`compute_buckets`, :func:`merge_into` and :func:`bucket_rows` give
    for a lone point, without their arrays: a synchronous ``log_metric`` appends one point,
    and the array work of five levels was a tenth of its server time (lists indexed by
    position, not dicts keyed by formatted names: those were still a tenth of what is left).
    """
    out = []
    for level, size in enumerate(LEVEL_SIZES, start=1):
        bucket = [1, *point, *point, *point, *point]
        previous = stored.get(level)
        if previous is not None:
            _merge_lone(bucket, previous)
        first = bucket[_FIRST_TIME]
        for at in _RELATIVE:
            bucket[at] = bucket[at] - first
        out.append((level, ordinal // size, bucket))
    return out


def _merge_lone(bucket: list[Any], stored: Sequence[Any]) -> None:
    """:func:`merge_into` on one bucket of Python scalars (both of :data:`COLUMNS`)."""
    bucket[0] += stored[0]
    if stored[_FIRST] <= bucket[_FIRST]:
        _copy_lone(bucket, stored, _FIRST)
    if stored[_LAST] > bucket[_LAST]:
        _copy_lone(bucket, stored, _LAST)
    for at, pick_max in ((_MIN, False), (_MAX, True)):
        if not _better(float(bucket[at + 2]), _nan(stored[at + 2]), pick_max):
            _copy_lone(bucket, stored, at)


def _copy_lone(bucket: list[Any], stored: Sequence[Any], at: int) -> None:
    """The stored part whose fields start at ``at`` copied into the bucket."""
    bucket[at] = stored[at]
    bucket[at + 1] = stored[at + 1]
    bucket[at + 2] = _nan(stored[at + 2])
    stored_time = _nan(stored[at + 3])  # NULL, or NaN as PostgreSQL keeps it
    bucket[at + 3] = stored_time if math.isnan(stored_time) else int(stored_time)
