"""Pre-aggregated resolution levels of a series, and min/max downsampling. Pure numpy.

Level 0 is the raw points; level k >= 1 groups points by arrival ordinal into buckets of
``LEVEL_SIZES[k - 1]`` points. Each bucket keeps n and its first, last, min and max points
(iteration, epoch, value). Only the last bucket of a level can be partial, so an append merges
into at most one stored bucket per level. min/max ignore NaN; an all-NaN bucket keeps NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LEVEL_SIZES = (64, 512, 4096, 32768, 262144)
ITEMS_PER_POINT = 4  # a read scans at most this many items per returned point (see choose_level)
PARTS = ("first", "last", "min", "max")
POINT_FIELDS = ("iteration", "epoch", "value")
COLUMNS = ("n", *(f"{p}_{f}" for p in PARTS for f in POINT_FIELDS))

Buckets = dict[str, np.ndarray]


def choose_level(total: int, max_points: int) -> int:
    """The finest level with at most ``ITEMS_PER_POINT * max_points`` items (0 = raw).

    A small factor keeps the rows read close to ``max_points`` whatever the series length
    (a 1e5- and a 1e7-point series read 1,563 and 2,442 rows for 2,000 points), while every
    group of the downsampling still spans whole buckets, whose min and max are exact.
    """
    budget = ITEMS_PER_POINT * max_points
    if total <= budget:
        return 0
    for level, size in enumerate(LEVEL_SIZES, start=1):
        if math.ceil(total / size) <= budget:
            return level
    return len(LEVEL_SIZES)


def _segment_pick(
    values: np.ndarray, seg: np.ndarray, starts: np.ndarray, pick_max: bool
) -> np.ndarray:
    """Index of the first min (or max) non-NaN value of each segment; first index if all NaN."""
    nan = np.isnan(values)
    fill = -np.inf if pick_max else np.inf
    filled = np.where(nan, fill, values)
    reduce = np.maximum if pick_max else np.minimum
    best = reduce.reduceat(filled, starts)
    has_value = np.add.reduceat(~nan, starts) > 0
    hits = np.flatnonzero((filled == best[seg]) & (~nan | ~has_value[seg]))
    first_of_segment = np.r_[True, seg[hits][1:] != seg[hits][:-1]]
    return hits[first_of_segment]


def _points(prefix: str, idx: np.ndarray, it: np.ndarray, ep: np.ndarray, v: np.ndarray) -> Buckets:
    return {
        f"{prefix}_iteration": it[idx],
        f"{prefix}_epoch": ep[idx],
        f"{prefix}_value": v[idx],
    }


def compute_buckets(
    series: np.ndarray,
    ordinals: np.ndarray,
    size: int,
    it: np.ndarray,
    ep: np.ndarray,
    v: np.ndarray,
) -> Buckets:
    """Buckets of ``size`` points for several series at once.

    Args:
        series: per point, the index of its series (points of a series contiguous, in order).
        ordinals: per point, its arrival ordinal within its series.
        size: the level's bucket size.
        it, ep, v: per point, iteration, epoch (-1 = none) and value.

    Returns:
        Columns per bucket: ``series``, ``bucket`` and :data:`COLUMNS`.
    """
    n = len(v)
    bucket_ids = ordinals // size
    change = np.ones(n, dtype=bool)
    change[1:] = (bucket_ids[1:] != bucket_ids[:-1]) | (series[1:] != series[:-1])
    starts = np.flatnonzero(change)
    seg = np.cumsum(change) - 1
    ends = np.r_[starts[1:], n] - 1
    out: Buckets = {"series": series[starts], "bucket": bucket_ids[starts], "n": ends - starts + 1}
    out.update(_points("first", starts, it, ep, v))
    out.update(_points("last", ends, it, ep, v))
    out.update(_points("min", _segment_pick(v, seg, starts, False), it, ep, v))
    out.update(_points("max", _segment_pick(v, seg, starts, True), it, ep, v))
    return out


def _better(new: float, old: float, pick_max: bool) -> bool:
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    return new > old if pick_max else new < old


def merge_into(buckets: Buckets, i: int, stored: dict[str, Any]) -> None:
    """Fold a stored partial bucket (same series and bucket id) into bucket ``i`` in place.

    The stored points came first, so they supply ``first`` and win min/max ties.
    """
    buckets["n"][i] += stored["n"]
    _copy_point(buckets, i, stored, "first")
    for part, pick_max in (("min", False), ("max", True)):
        old = _nan(stored[f"{part}_value"])
        if not _better(float(buckets[f"{part}_value"][i]), old, pick_max):
            _copy_point(buckets, i, stored, part)


def _copy_point(buckets: Buckets, i: int, stored: dict[str, Any], part: str) -> None:
    buckets[f"{part}_iteration"][i] = stored[f"{part}_iteration"]
    buckets[f"{part}_epoch"][i] = stored[f"{part}_epoch"]
    buckets[f"{part}_value"][i] = _nan(stored[f"{part}_value"])


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def bucket_rows(buckets: Buckets, extra: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Plain-Python row dicts (NaN kept as float NaN): :data:`COLUMNS`, ``bucket`` and
    the ``extra`` columns."""
    names = ["bucket", *COLUMNS, *extra]
    columns = [buckets[name].tolist() for name in ["bucket", *COLUMNS]]
    columns += [np.asarray(col).tolist() for col in extra.values()]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def downsample(items: Buckets, max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At most ``max_points`` points: per group of items its min and max point, plus the very
    first and very last point, sorted by iteration.

    ``items`` has the point columns of :data:`COLUMNS` (raw points: all four parts equal).
    """
    m = len(items["min_value"])
    first = _stack(items, "first", slice(0, 1))
    last = _stack(items, "last", slice(m - 1, m))
    if max_points < 4:
        return _finish(np.concatenate([first, last], axis=1), max_points)
    groups = max(1, min((max_points - 2) // 2, m))
    starts = (np.arange(groups, dtype=np.int64) * m) // groups
    change = np.zeros(m, dtype=bool)
    change[starts] = True
    seg = np.cumsum(change) - 1
    picks = [first]
    for part, pick_max in (("min", False), ("max", True)):
        idx = _segment_pick(items[f"{part}_value"].astype(np.float64), seg, starts, pick_max)
        picks.append(_stack(items, part, idx))
    picks.append(last)
    return _finish(np.concatenate(picks, axis=1), max_points)


def _stack(items: Buckets, part: str, idx: Any) -> np.ndarray:
    """A (3, k) float array of iteration, epoch, value."""
    return np.vstack(
        [np.asarray(items[f"{part}_{f}"][idx], dtype=np.float64) for f in POINT_FIELDS]
    )


def _finish(points: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((points[1], points[0]))
    points = points[:, order]
    if points.shape[1] > 1:
        same = (points[0, 1:] == points[0, :-1]) & (points[1, 1:] == points[1, :-1])
        same &= (points[2, 1:] == points[2, :-1]) | (
            np.isnan(points[2, 1:]) & np.isnan(points[2, :-1])
        )
        points = points[:, np.r_[True, ~same]]
    if points.shape[1] > max_points:
        keep = np.r_[np.arange(max_points - 1), points.shape[1] - 1]
        points = points[:, keep]
    return points[0].astype(np.int64), points[1].astype(np.int64), points[2]
