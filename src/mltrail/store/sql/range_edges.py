"""The items of a zoomed downsampled read: a rollup level's buckets inside the range, with
every bucket straddling an end of it replaced by its in-range part.

A bucket straddling ``start`` or ``end`` holds points on both sides: its min, max, first or
last point may lie outside the range, and dropping them (or it) loses the range's extremes
and ends. Such a bucket is split into its buckets one level finer (those inside kept whole,
those still straddling split again), and at the first level into the raw points of its
iterations inside the range; each step reads at most one bucket's children, so the edges of
a zoom cost a few dozen rows and about a first-level bucket's worth of points each (more when
iterations repeat: the raw read goes by iteration range, and the repeats are dropped after).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sqlalchemy import Connection

from mltrail.store.sql import rollup_reads, rollups

# the raw points (iterations, epochs, values, times in seconds) of the iterations in
# ``bounds``, in iteration order, and how many rows were read for them
RawReader = Callable[[tuple[int, int]], tuple[tuple[np.ndarray, ...], int]]
Items = dict[str, np.ndarray]

_NAMES = [f"{p}_{f}" for p in rollups.PARTS for f in rollups.POINT_FIELDS]


def in_range_items(
    conn: Connection,
    series_id: int,
    level: int,
    table: rollup_reads.Table,
    bounds: tuple[int, int],
    read_raw: RawReader,
) -> tuple[Items, int]:
    """The items :func:`rollups.downsample` reads for the points of ``table`` (buckets of
    ``level`` overlapping ``bounds``) inside ``bounds``, times in seconds, and the rows read
    (the table's and the edges'): exact extremes, and the range's first and last points."""
    pieces: list[Items] = []
    where = (conn, series_id, bounds, read_raw)
    rows = len(table["bucket"]) + _collect(where, level, table, pieces)
    items = {name: np.concatenate([piece[name] for piece in pieces]) for name in _NAMES}
    return _with_ends(items), rows


def _collect(
    where: tuple[Connection, int, tuple[int, int], RawReader],
    level: int,
    table: rollup_reads.Table,
    pieces: list[Items],
) -> int:
    """Append the in-range parts of the table's buckets to ``pieces``; the rows read for the
    straddling ones; ``where``: the connection, series, range and raw reader."""
    conn, series_id, (lo, hi), read_raw = where
    first, last = table["first_iteration"], table["last_iteration"]
    straddling = np.flatnonzero((first < lo) | (last > hi)).tolist()
    rows, at = 0, 0
    for i in [*straddling, len(first)]:  # in bucket order: the pieces stay in arrival order
        if i > at:
            pieces.append({name: _seconds(name, table[name][at:i]) for name in _NAMES})
        at = i + 1
        if i == len(first):
            break
        part = (max(lo, int(first[i])), min(hi, int(last[i])))
        if level == 1:
            cols, read = read_raw(part)
            # every point of these iterations: the bucket's in-range ones and perhaps others
            # of the range (ties at a bucket's edge), which change no extreme
            pieces.append({f"{p}_{f}": c for p in rollups.PARTS
                           for f, c in zip(rollups.POINT_FIELDS, cols, strict=True)})  # fmt: skip
            rows += read
            continue
        factor = rollups.LEVEL_SIZES[level - 1] // rollups.LEVEL_SIZES[level - 2]
        bucket = int(table["bucket"][i])
        span = (bucket * factor, (bucket + 1) * factor - 1)
        finer = rollup_reads.level_range(conn, series_id, level - 1, part, span)
        rows += len(finer["bucket"])
        rows += _collect(where, level - 1, finer, pieces)
    return rows


def _seconds(name: str, column: np.ndarray) -> np.ndarray:
    return column / 1000.0 if name.endswith("_time") else column  # stored in milliseconds


def _with_ends(items: Items) -> Items:
    """Downsampling takes the first point of the first item and the last of the last one: the
    range's lowest and highest iteration (earliest and latest to arrive among equals),
    broadcast over the items."""
    m = len(items["first_iteration"])
    if not m:
        return items
    at = np.arange(m)
    ends = (
        ("first", int(np.lexsort((at, items["first_iteration"]))[0])),
        ("last", int(np.lexsort((at, items["last_iteration"]))[-1])),
    )
    for part, i in ends:
        for f in rollups.POINT_FIELDS:
            items[f"{part}_{f}"] = np.broadcast_to(items[f"{part}_{f}"][i], (m,))
    return items
