"""Chunks of metric points as stored (one ``metric_chunks.data`` value, packed by
:mod:`mltrail.core.chunk_codec`), and the compaction that merges small chunks."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection, delete, select

from mltrail.core.chunk_codec import decode_chunks, encode_chunk
from mltrail.core.types import SeriesChunk
from mltrail.store.sql.engine import select_any
from mltrail.store.sql.tables import metric_chunks

__all__ = ["compact_after_append", "iteration_order"]


def iteration_order(iterations: np.ndarray) -> np.ndarray | None:
    """The stable sort putting ``iterations`` in order (ties keep arrival order), or None when
    they already are (the usual case, checked without sorting)."""
    if len(iterations) < 2 or not np.any(iterations[1:] < iterations[:-1]):
        return None
    return np.argsort(iterations, kind="stable")


# --- compaction ---------------------------------------------------------------------------------
# A training loop flushing ~10 points per series a second writes one small chunk per flush: rows
# and headers cost more than the points. When a series' count crosses a multiple of a tier's
# size, the chunks that start in the windows just completed are merged into one, if there are
# at least COMPACT_MIN_CHUNKS of them (SDK-sized batches are left alone). Tiers merge the merges,
# so a series holds at most a few dozen chunks beyond its 4,096-point ones.
COMPACT_TIERS = (256, 4096)
COMPACT_MIN_CHUNKS = 8


def compact_after_append(conn: Connection, grown: list[tuple[int, int, int]]) -> int:
    """Merge the small chunks of the windows each series completed; returns chunks removed.

    Args:
        conn: the append's transaction (the new chunks already inserted).
        grown: per series appended to, ``(series_id, count before, count after)``.
    """
    windows = [
        (series_id, (before // size) * size, (after // size) * size)
        for series_id, before, after in grown
        for size in COMPACT_TIERS
        if after // size > before // size
    ]
    starts: dict[int, list[int]] = {}
    tests = ("series_id =", "start >=", "start <")
    found = select_any(conn, metric_chunks, tests, windows, ("series_id", "start"))  # not data
    for row in found:  # one query, not one a window
        starts.setdefault(row["series_id"], []).append(row["start"])
    removed = 0
    for sid, low, high in windows:  # a smaller tier's merge first: the larger one counts it
        mine = starts.get(sid, [])
        inside = [s for s in mine if low <= s < high]
        if len(inside) >= COMPACT_MIN_CHUNKS:
            removed += _merge_window(conn, sid, (low, high))
            starts[sid] = [s for s in mine if not low <= s < high] + [min(inside)]
    return removed


def _merge_window(conn: Connection, series_id: int, window: tuple[int, int]) -> int:
    c = metric_chunks.c
    where = (c.series_id == series_id, c.start >= window[0], c.start < window[1])
    rows = conn.execute(select(c.start, c.count, c.data).where(*where).order_by(c.start)).all()
    it, ep, v, t = decode_chunks([(data, n) for _, n, data in rows])
    order = iteration_order(it)  # chunks are in order, but a later one may go back
    if order is not None:
        it, ep, v, t = it[order], ep[order], v[order], t[order]
    merged = SeriesChunk("", "", it, ep, v, t)
    conn.execute(delete(metric_chunks).where(*where))
    conn.execute(
        metric_chunks.insert().values(
            series_id=series_id,
            start=rows[0].start,
            count=len(it),
            first_iteration=int(it[0]),
            last_iteration=int(it[-1]),
            data=encode_chunk(merged),
        )
    )
    return len(rows) - 1
