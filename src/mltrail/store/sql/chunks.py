"""Chunks of metric points as stored (one ``metric_chunks.data`` value, packed by
:mod:`mltrail.core.chunk_codec`), and the compaction that merges small chunks."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection, bindparam, delete

from mltrail.core.chunk_codec import decode_many, encode_chunks
from mltrail.core.types import SeriesChunk
from mltrail.store.sql.engine import select_any_tuples
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
    if not windows:
        return 0
    starts: dict[int, list[int]] = {}
    tests = ("series_id =", "start >=", "start <")
    found = select_any_tuples(conn, metric_chunks, tests, windows, ("series_id", "start"))
    for series_id, start in found:  # one query, not one a window; not their data
        starts.setdefault(series_id, []).append(start)
    # each series' chunks (by start) as the merges leave them: a merge's chunk stands at its
    # first chunk's start and holds the chunks it merged (a later merge may take it in too)
    held: dict[int, dict[int, list[int]]] = {s: {x: [x] for x in xs} for s, xs in starts.items()}
    merged: dict[int, set[int]] = {}  # per series, the starts of the chunks merges made
    for sid, low, high in windows:  # a smaller tier's merge first: the larger one counts it
        mine = held.get(sid, {})
        inside = sorted(s for s in mine if low <= s < high)
        if len(inside) >= COMPACT_MIN_CHUNKS:
            mine[inside[0]] = [x for s in inside for x in mine.pop(s)]
            merged.setdefault(sid, set()).add(inside[0])
    groups = [(sid, held[sid][s]) for sid in merged for s in sorted(merged[sid]) if s in held[sid]]
    for at in range(0, len(groups), MERGES_AT_ONCE):
        _merge_groups(conn, groups[at : at + MERGES_AT_ONCE])
    return sum(len(members) - 1 for _, members in groups)


# merges decoded together (each a window of up to a few thousand points): a batch of a
# thousand series completing windows at once stays within a few megabytes
MERGES_AT_ONCE = 16


def _merge_groups(conn: Connection, groups: list[tuple[int, list[int]]]) -> None:
    """Replace each group of a series' chunks (their starts, in order) by one chunk of their
    points in iteration order (stable: a merge of chunks already merged gives the very points
    merging them again gives), all groups read with one query and written with one insert."""
    spans = [(sid, members[0], members[-1]) for sid, members in groups]  # no others between
    columns = ("series_id", "start", "count", "data")
    tests = ("series_id =", "start >=", "start <=")
    rows = {(r[0], r[1]): r for r in select_any_tuples(conn, metric_chunks, tests, spans, columns)}
    wanted = [(sid, start) for sid, members in groups for start in members]
    if len(rows) != len(wanted):  # never: the delete below goes by span, so check, not assert
        raise RuntimeError(f"compaction found {len(rows)} chunks within its merges' spans where "
                           f"it planned {len(wanted)}: nothing merged")  # fmt: skip
    it, ep, v, t = decode_many([(rows[k][3], rows[k][2]) for k in wanted])
    chunks, at = [], 0
    for sid, members in groups:
        n = sum(rows[sid, start][2] for start in members)
        part = slice(at, at + n)
        at += n
        order = iteration_order(it[part])  # chunks are in order, but a later one may go back
        cols = [c[part] if order is None else c[part][order] for c in (it, ep, v, t)]
        chunks.append(SeriesChunk("", "", cols[0], cols[1], cols[2], cols[3]))
    conn.execute(_DELETE_CHUNKS, [{"s": sid, "lo": lo, "hi": hi} for sid, lo, hi in spans])
    conn.execute(
        metric_chunks.insert(),
        [
            {"series_id": sid, "start": members[0], "count": len(chunk),
             "first_iteration": int(chunk.iterations[0]),
             "last_iteration": int(chunk.iterations[-1]), "data": data}
            for (sid, members), chunk, data in zip(groups, chunks, encode_chunks(chunks),
                                                   strict=True)
        ],
    )  # fmt: skip


_C = metric_chunks.c
_DELETE_CHUNKS = delete(metric_chunks).where(
    _C.series_id == bindparam("s"), _C.start >= bindparam("lo"), _C.start <= bindparam("hi")
)
