"""Chunks of metric points as stored (one ``metric_chunks.data`` value, packed by
:mod:`mltrail.core.chunk_codec`), and the compaction that merges small chunks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, bindparam, delete

from mltrail.core.chunk_codec import MERGED_LEVEL, decode_many, encode_chunks
from mltrail.core.types import SeriesChunk
from mltrail.store.sql.engine import driver_cursor, select_any_tuples
from mltrail.store.sql.tables import metric_chunks

__all__ = [
    "COMPACTED_BELOW",
    "COMPACT_TIERS",
    "Tier",
    "compact_after_append",
    "completed_windows",
    "iteration_order",
]


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
# at least the tier's ``min_chunks`` of them. Tiers merge the merges (four 64-point merges make a
# 256-point one), so a series holds at most a few dozen chunks beyond its 4,096-point ones.
# A window is only searched when the append that completed it put at most ``small`` points into
# the series: appends of larger chunks leave too few chunks in a window to merge (SDK-sized
# batches and MLflow's 1,000-metric log_batch requests are left alone, without a query), and
# the next tier still catches what an irregular pattern leaves behind.


@dataclass(frozen=True)
class Tier:
    size: int  # points per window
    min_chunks: int  # a window holding fewer chunks is left alone
    small: int  # an append of more points into the series does not search this tier's window


COMPACT_TIERS = (Tier(64, 4, 16), Tier(256, 4, 32), Tier(1024, 8, 128), Tier(4096, 4, 512))
# A chunk of at most the largest ``small`` points is merged (and packed again) once a window of
# a tier that searches after it completes, if that window then holds the chunks it needs. So an
# append packs such a chunk without deflating it (chunk_codec's ``stored_below``): the merge
# deflates its points. What stays so is a series' tail below its next window, and windows an
# irregular pattern left with too few chunks.
COMPACTED_BELOW = max(t.small for t in COMPACT_TIERS) + 1


def completed_windows(grown: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """``(series_id, low, high, min_chunks)`` of each tier window an append completed and
    should search (smaller tiers first), for ``grown`` as :func:`compact_after_append` takes."""
    return [
        (series_id, (before // t.size) * t.size, (after // t.size) * t.size, t.min_chunks)
        for series_id, before, after in grown
        for t in COMPACT_TIERS
        if after // t.size > before // t.size and after - before <= t.small
    ]


def compact_after_append(conn: Connection, grown: list[tuple[int, int, int]]) -> int:
    """Merge the small chunks of the windows each series completed; returns chunks removed.

    Args:
        conn: the append's transaction (the new chunks already inserted).
        grown: per series appended to, ``(series_id, count before, count after)``.
    """
    windows = completed_windows(grown)
    if not windows:
        return 0
    starts: dict[int, list[int]] = {}
    tests = ("series_id =", "start >=", "start <")
    spans = [w[:3] for w in windows]
    found = select_any_tuples(conn, metric_chunks, tests, spans, ("series_id", "start"))
    for series_id, start in found:  # one query, not one a window; not their data
        starts.setdefault(series_id, []).append(start)
    # each series' chunks (by start) as the merges leave them: a merge's chunk stands at its
    # first chunk's start and holds the chunks it merged (a later merge may take it in too)
    held: dict[int, dict[int, list[int]]] = {s: {x: [x] for x in xs} for s, xs in starts.items()}
    merged: dict[int, set[int]] = {}  # per series, the starts of the chunks merges made
    for sid, low, high, least in windows:  # a smaller tier's merge first: the larger counts it
        mine = held.get(sid, {})
        inside = sorted(s for s in mine if low <= s < high)
        if len(inside) >= least:
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
    sqlite = conn.dialect.name == "sqlite"
    columns = ("series_id", "start", "count", "data", *(("rowid",) if sqlite else ()))
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
    # float32 values as float32 bits (format 2); deflated harder than an append's chunk
    packed = encode_chunks(chunks, narrow=True, level=MERGED_LEVEL)
    merged = [
        {"series_id": sid, "start": members[0], "count": len(chunk),
         "first_iteration": int(chunk.iterations[0]),
         "last_iteration": int(chunk.iterations[-1]), "data": data}
        for (sid, members), chunk, data in zip(groups, chunks, packed, strict=True)
    ]  # fmt: skip
    if not sqlite:
        conn.execute(metric_chunks.insert(), merged)
        return
    # SQLite: each merge takes its first chunk's rowid, so it is stored where that chunk was
    # (rowid order is page order) and the pages its other chunks held empty out whole: with a
    # new rowid (at the end), long-lived merges sat beside short-lived small chunks, and the
    # pages those left were up to half empty
    params = [
        (rows[sid, members[0]][4], *m.values())
        for (sid, members), m in zip(groups, merged, strict=True)
    ]
    driver_cursor(conn, _INSERT_AT_ROWID, params, many=True).close()


_INSERT_AT_ROWID = (
    'INSERT INTO "metric_chunks" (rowid, "series_id", "start", "count", "first_iteration", '
    '"last_iteration", "data") VALUES (?, ?, ?, ?, ?, ?, ?)'
)
_C = metric_chunks.c
_DELETE_CHUNKS = delete(metric_chunks).where(
    _C.series_id == bindparam("s"), _C.start >= bindparam("lo"), _C.start <= bindparam("hi")
)
