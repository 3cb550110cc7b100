"""Whole rollup levels of several series read as columns, one series after another: what a
chart read of a series (:func:`level_tables`) and a compare view's batched read
(``rollup_batch.downsample_level``) downsample.

The blocks and tails of a level (:class:`rollup_reads.StoredLevel`) are laid out series by
series in bucket order, a column decoded and gathered only when a read asks for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from sqlalchemy import Connection

from mltrail.store.sql import rollups
from mltrail.store.sql.rollup_blocks import BLOCK_BUCKETS
from mltrail.store.sql.rollup_reads import StoredLevel, Table, fetch_level


def level_tables(conn: Connection, level: int, series_ids: Sequence[int]) -> dict[int, Table]:
    """Every bucket of ``level`` of each series (:func:`level_columns`), a table each (each
    column a slice of one array of all series')."""
    found = level_columns(conn, level, series_ids)
    whole = {name: found.column(name) for name in ("bucket", *rollups.COLUMNS)}
    return {
        s: {name: c[at:end] for name, c in whole.items()} for s, (at, end) in found.spans.items()
    }


def level_columns(conn: Connection, level: int, series_ids: Sequence[int]) -> LevelColumns:
    """Every bucket of ``level`` of each series (two queries: :func:`fetch_level`)."""
    return LevelColumns(series_ids, fetch_level(conn, level, series_ids))


class LevelColumns:
    """Every bucket of a level of several series: series ``s``'s buckets are
    ``[spans[s][0]:spans[s][1]]`` of each column, one series after another (in the order of
    the ids, each once), in bucket order. Columns: ``bucket`` and :data:`rollups.COLUMNS`,
    n, iterations and epochs int64, values and times float64, times absolute (ms)."""

    def __init__(self, series_ids: Sequence[int], stored: StoredLevel) -> None:
        self._stored = stored
        self.spans, self._order = _layout(series_ids, stored.numbers, stored.row_keys)

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` of every bucket."""
        return self._stored.source(name).take(self._order)

    def at(self, name: str, index: np.ndarray) -> np.ndarray:
        """Column ``name`` of the buckets at ``index`` (positions in :meth:`column`)."""
        return self._stored.at(name, self._order.take(index))


def _layout(
    series_ids: Sequence[int], numbers: np.ndarray, row_keys: np.ndarray
) -> tuple[dict[int, tuple[int, int]], np.ndarray]:
    """Where each series' buckets go in :class:`LevelColumns`' columns, one series after
    another in bucket order: the spans, and each bucket's place among the blocks' buckets
    (``numbers``: series and block of each block, by series) followed by the rows'
    (``row_keys``: series and bucket of each row, by series)."""
    in_blocks = dict(_run_map(numbers[:, 0]))
    in_rows = dict(_run_map(row_keys[0]))
    held = len(numbers) * BLOCK_BUCKETS
    spans, pieces, total = {}, [], 0
    for s in series_ids:
        if s in spans:
            continue
        (b0, b1), (r0, r1) = in_blocks.get(s, (0, 0)), in_rows.get(s, (0, 0))
        mine = [np.arange(b0 * BLOCK_BUCKETS, b1 * BLOCK_BUCKETS), np.arange(held + r0, held + r1)]
        if b1 > b0 and r1 > r0 and row_keys[1, r0] < (numbers[b1 - 1, 1] + 1) * BLOCK_BUCKETS:
            # rows stored before their blocks (migration 0014) sort among them
            keys = np.concatenate([
                (numbers[b0:b1, 1, None] * BLOCK_BUCKETS + np.arange(BLOCK_BUCKETS)).reshape(-1),
                row_keys[1, r0:r1],
            ])  # fmt: skip
            mine = [np.concatenate(mine)[np.argsort(keys, kind="stable")]]
        pieces += mine
        size = (b1 - b0) * BLOCK_BUCKETS + r1 - r0
        spans[s] = (total, total + size)
        total += size
    return spans, np.concatenate(pieces) if pieces else np.empty(0, np.intp)


def _run_map(owners: np.ndarray) -> list[tuple[int, tuple[int, int]]]:
    """(value, (start, end)) of each run of equal values."""
    return [(int(owners[lo]), (lo, hi)) for lo, hi in _runs(owners)] if len(owners) else []


def _runs(owners: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of equal values."""
    cuts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1], True]).tolist()
    return list(itertools.pairwise(cuts))
