"""Sealing rollup blocks: an append packs the blocks its points complete (:func:`seal_blocks`)
into ``metric_rollup_blocks`` (:func:`store_blocks`), in the form :mod:`rollup_blocks` defines;
the series' tails it writes (:mod:`rollup_tails`) leave their buckets out. A sealed block never
changes (only the last bucket of a level is ever partial), and a rewind deletes the series.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection

from mltrail.store.sql import rollup_tails, rollups
from mltrail.store.sql.engine import Database
from mltrail.store.sql.rollup_blocks import (
    BLOCK_BUCKETS,
    TIMES,
    VALUES,
    WIDTH,
    encode_many,
)
from mltrail.store.sql.tables import metric_rollup_blocks

# A level's buckets an append computed: per bucket its series id and bucket number, and the
# :data:`rollups.COLUMNS` as stored (exact integers; times relative as in the rows)
Fresh = tuple[np.ndarray, np.ndarray, list[np.ndarray]]
Block = tuple[int, int, int, int, int, bytes]  # series, level, block, iterations, data
# a complete block before packing: series, level, block, its (COLUMNS, buckets) float64
# array as read and its exact integer columns (rollup_blocks.encode_many)
_Pending = tuple[int, int, int, np.ndarray, Callable[[int], np.ndarray]]


def seal_blocks(
    tails: dict[int, rollup_tails.Tail],
    grown: Sequence[tuple[int, int, int]],
    fresh: Callable[[int], Fresh],
    sqlite: bool,
) -> list[Block]:
    """The blocks an append completes: ``grown`` lists (series id, points before, points
    after), ``fresh(level)`` the level's buckets the append computed. A level's block is
    complete once the series holds its every point; it packs its buckets as they are stored
    after the append (those of earlier complete blocks still in the tails too), taken from
    the series' stored ``tails`` (:func:`rollup_tails.fetch_tails`) for the buckets stored before
    the append (the append's own come from ``fresh``, as the database would give them back:
    ``sqlite`` keeps no -0.0). The caller writes the blocks (:func:`store_blocks`) and tails
    without their buckets."""
    pending: list[_Pending] = []
    levels: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]] = {}
    for series_id, before, after in grown:
        for level, size in enumerate(rollups.LEVEL_SIZES, start=1):
            span = BLOCK_BUCKETS * size
            if after // span > before // span:
                if level not in levels:
                    levels[level] = _as_read(fresh(level), sqlite)
                end = (after // span) * BLOCK_BUCKETS
                stored = tails.get(series_id)
                table = None if stored is None else stored.table
                pending += _level_blocks(table, (series_id, level),
                                         (before // size, end), levels[level])  # fmt: skip
    if not pending:
        return []
    packed = encode_many(np.stack([p[3] for p in pending]), [p[4] for p in pending])
    return [(s, level, k, *found[1:], found[0])
            for (s, level, k, _, _), found in zip(pending, packed, strict=True)
            if found is not None]  # fmt: skip


def _as_read(fresh: Fresh, sqlite: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """``fresh`` with its columns also as one float64 array, as the database gives them back
    (NaN values as NULL: the one NaN; on SQLite -0.0 as 0.0; times as doubles)."""
    series, bucket, columns = fresh
    floats = np.array(columns, dtype=np.float64).reshape(WIDTH, len(bucket))
    values = floats[VALUES]
    if sqlite:
        values += 0.0  # -0.0 + 0.0 is 0.0
    values[np.isnan(values)] = np.nan
    floats[VALUES] = values
    return series, bucket, floats, columns


def store_blocks(conn: Connection, db: Database, blocks: list[Block]) -> None:
    """Write the blocks :func:`seal_blocks` packed with one insert."""
    if not blocks:
        return
    names = ["series_id", "level", "block", "first_iteration", "last_iteration", "data"]
    db.insert_rows(conn, metric_rollup_blocks, names, blocks)


def _level_blocks(
    stored: np.ndarray | None,
    key: tuple[int, int],
    bounds: tuple[int, int],
    level: tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]],
) -> list[_Pending]:
    """Every complete block of buckets below ``bounds[1]`` still in the series' tails
    (``stored``), to pack (those from ``bounds[0]`` on, the append's, taken from ``level``);
    :func:`seal_blocks`
    packs them all at once (a block with a bucket without times stays rows)."""
    (series_id, number), (lo, end) = key, bounds
    rows = [] if stored is None else _stored_rows(stored, number, lo)
    series, bucket, floats, columns = level
    mine = np.flatnonzero((series == series_id) & (bucket < end))
    buckets = [row[0] for row in rows] + bucket[mine].tolist()
    table = np.empty((WIDTH, len(buckets)))
    table[:, : len(rows)] = np.array([row[1:] for row in rows], np.float64).reshape(-1, WIDTH).T
    table[:, len(rows) :] = floats[:, mine]
    held = len(rows)

    def exact(j: int, start: int, stop: int) -> np.ndarray:
        """Column ``j`` of buckets ``start:stop`` as exact integers (as stored)."""
        old = [row[1 + j] for row in rows[start:stop]]
        picked = mine[max(start - held, 0) : max(stop - held, 0)]
        new = floats[j, picked] if j in TIMES else columns[j][picked]  # times stored as doubles
        return np.concatenate([np.array(old, dtype=np.int64), new.astype(np.int64)])

    blocks: list[_Pending] = []
    for start in range(0, len(buckets), BLOCK_BUCKETS):
        stop = start + BLOCK_BUCKETS
        first = buckets[start]
        if (
            stop > len(buckets)
            or buckets[stop - 1] != first + BLOCK_BUCKETS - 1
            or first % BLOCK_BUCKETS
        ):
            break  # buckets missing (never, as buckets are written): leave the rest as rows
        block_exact = functools.partial(exact, start=start, stop=stop)
        blocks.append((series_id, number, first // BLOCK_BUCKETS, table[:, start:stop],
                       block_exact))  # fmt: skip
    return blocks


def _stored_rows(stored: np.ndarray, level: int, end: int) -> list[tuple[Any, ...]]:
    """The stored buckets of ``level`` below ``end`` of a series' tails, by bucket, each as
    (bucket, *COLUMNS) (as a row of them read back)."""
    table = rollup_tails.of_level(stored, level)
    return [row[1:] for row in rollup_tails.as_rows(table[:, table[1] < end])]
