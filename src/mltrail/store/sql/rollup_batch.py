"""Min/max downsampling of many series' rollup levels at once: a compare view's batched read.

:func:`rollups.downsample` of one series' level costs a few dozen numpy calls, about a tenth of
a millisecond whatever its size: a hundred series paid it a hundred times. Here every series
read from a level is downsampled by the same few calls over the level's arrays of all of
them (:class:`rollup_levels.LevelColumns`), giving each series exactly what
``rollups.downsample(series._level_items(table), max_points)`` gives it (the picks, their
order, the duplicates dropped and the cap; checked in tests/store/test_batched_reads.py).
"""

from __future__ import annotations

import numpy as np

from mltrail.store.sql import rollups
from mltrail.store.sql.rollup_levels import LevelColumns

# iterations, epochs, values, times (None when not asked)
Points = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]


def downsample_level(found: LevelColumns, max_points: int, times: bool) -> dict[int, Points]:
    """Each series of ``found`` with at least one bucket, downsampled to ``max_points``
    (>= 4) as :func:`rollups.downsample` downsamples its level's items: iterations, epochs,
    values and times (seconds; None unless ``times``)."""
    assert max_points >= 4  # below, rollups.downsample keeps only the ends
    ids = [s for s, (at, end) in found.spans.items() if end > at]
    if not ids:
        return {}
    at = np.array([found.spans[s][0] for s in ids], np.int64)
    m = np.array([found.spans[s][1] for s in ids], np.int64) - at
    k, total = len(ids), int(at[-1] + m[-1])
    # the spans are laid out one after another in id order: the buckets of ``ids`` are then
    # the arrays' first ``total`` (a series without buckets takes no room)
    owner = np.repeat(np.arange(k), m)
    groups = np.maximum(1, np.minimum(rollups.groups_for(max_points), m))
    group_owner = np.repeat(np.arange(k), groups)
    local = np.arange(len(group_owner)) - np.repeat(np.cumsum(groups) - groups, groups)
    starts = at[group_owner] + (local * m[group_owner]) // groups[group_owner]
    seg = np.cumsum(_flags(starts, total)) - 1
    column = found.column
    picks = [
        ("first", _first_of(column("first_iteration")[:total], owner, at, last=False)),
        ("min", _pick(column("min_value")[:total], seg, starts, False)),
        ("max", _pick(column("max_value")[:total], seg, starts, True)),
        ("last", _first_of(column("last_iteration")[:total], owner, at, last=True)),
    ]
    # each series' picks together, in rollups.downsample's order: first, its groups' minima,
    # their maxima, last
    size = 2 + 2 * groups
    base = np.cumsum(size) - size
    where = {
        "first": base,
        "min": base[group_owner] + 1 + local,
        "max": base[group_owner] + 1 + local + groups[group_owner],
        "last": base + 1 + 2 * groups,
    }
    n = int(size.sum())
    out_ints, out_floats = np.empty((2, n), np.int64), np.empty((2 if times else 1, n))
    for part, idx in picks:
        out_ints[0, where[part]] = found.at(f"{part}_iteration", idx)
        out_ints[1, where[part]] = found.at(f"{part}_epoch", idx)
        out_floats[0, where[part]] = found.at(f"{part}_value", idx)
        if times:
            out_floats[1, where[part]] = found.at(f"{part}_time", idx)
    if times:
        out_floats[1] /= 1000.0  # stored in milliseconds
    owners = np.repeat(np.arange(k), size)
    return _finish(ids, owners, out_ints, out_floats, max_points, times)


def _flags(starts: np.ndarray, n: int) -> np.ndarray:
    change = np.zeros(n, dtype=bool)
    change[starts] = True
    return change


def _pick(values: np.ndarray, seg: np.ndarray, starts: np.ndarray, pick_max: bool) -> np.ndarray:
    """Each group's first minimum (or maximum), NaN set aside (rollups.segment_pick)."""
    return rollups.segment_pick(np.ascontiguousarray(values), seg, starts, pick_max)


def _first_of(column: np.ndarray, owner: np.ndarray, at: np.ndarray, last: bool) -> np.ndarray:
    """Per series the index of its lowest ``column`` value, the first of equals (``last``:
    of its highest, the last of equals): the bucket of the lowest first iteration, or of the
    highest last iteration, as ``series._level_items`` finds it."""
    reduce = np.maximum if last else np.minimum
    hits = np.flatnonzero(column == reduce.reduceat(column, at)[owner])
    mine = owner[hits]
    if last:
        keep = np.empty(len(hits), dtype=bool)
        keep[-1:] = True
        np.not_equal(mine[1:], mine[:-1], out=keep[:-1])
        return hits[keep]
    return hits[rollups.changes(mine)]


def _finish(
    ids: list[int],
    owner: np.ndarray,
    ints: np.ndarray,
    floats: np.ndarray,
    max_points: int,
    times: bool,
) -> dict[int, Points]:
    """``rollups._finish`` of every series' picks (``owner``: each pick's series, picks of a
    series together): sorted by (iteration, epoch) with ties in pick order, a point equal to
    the one before it dropped, at most ``max_points`` kept (the first ones and the last)."""
    order = _order(owner, ints)
    owner, ints, floats = owner[order], ints[:, order], floats[:, order]
    same = (owner[1:] == owner[:-1]) & (ints[0, 1:] == ints[0, :-1]) & (ints[1, 1:] == ints[1, :-1])
    same &= (floats[0, 1:] == floats[0, :-1]) | (np.isnan(floats[0, 1:]) & np.isnan(floats[0, :-1]))
    keep = np.r_[True, ~same]
    owner, ints, floats = owner[keep], ints[:, keep], floats[:, keep]
    counts = np.bincount(owner, minlength=len(ids))
    ends = np.cumsum(counts)
    if int(counts.max()) > max_points:  # the cap: each series' first max_points - 1 and last
        rank = np.arange(len(owner)) - (ends - counts)[owner]
        keep = (rank < max_points - 1) | (rank == counts[owner] - 1)
        owner, ints, floats = owner[keep], ints[:, keep], floats[:, keep]
        counts = np.minimum(counts, max_points)
        ends = np.cumsum(counts)
    out = {}
    for s, end, count in zip(ids, ends.tolist(), counts.tolist(), strict=True):
        cut = slice(end - count, end)  # views of the arrays of all series
        out[s] = (ints[0, cut], ints[1, cut], floats[0, cut], floats[1, cut] if times else None)
    return out


def _order(owner: np.ndarray, ints: np.ndarray) -> np.ndarray:
    """The stable sort of the picks by (series, iteration, epoch): per series what
    rollups._finish's stable sort by iteration gives when an iteration's epochs do not go
    back (a stable sort by epoch then moves nothing), and its lexsort otherwise.

    A stable argsort of one key, series and iteration together, when the iterations' span
    times the series fits in int64 (a few sorted runs a series: a fraction of a lexsort's
    time), checked for an iteration whose epochs go back."""
    it, ep = ints
    lo, hi = int(it.min()), int(it.max())
    span = hi - lo + 1
    if span * (int(owner[-1]) + 1) < 2**62:
        key = owner * span + (it - lo)
        order = np.argsort(key, kind="stable")
        key, ep = key[order], ep[order]
        if not np.any((key[1:] == key[:-1]) & (ep[1:] < ep[:-1])):
            return order
    return np.lexsort((ints[1], ints[0], owner))
