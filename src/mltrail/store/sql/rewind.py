"""Rewinding an experiment's points: everything after an iteration is discarded, atomically.

A rewound series is rebuilt through the ordinary ingest path (:func:`points.append_points`):
its stored points are decoded, the series (chunks, rollups, summary) is deleted, and the points
kept are appended again in batches, so chunks, rollups and summaries follow exactly the rules of
any other write. Series with no point after the iteration are not touched. Everything happens
in the caller's transaction: a reader sees the series before or after, never between.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, select

from mltrail.core import validation
from mltrail.core.chunk_codec import decode_chunks
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql.access import Scope, SqlNoun, experiment_pk
from mltrail.store.sql.engine import Database
from mltrail.store.sql.points import append_points
from mltrail.store.sql.tables import (
    metric_chunks,
    metric_rollup_blocks,
    metric_rollup_tails,
    metric_series,
)

REWRITE_BATCH_POINTS = 50_000  # the SDK's batch size: chunks of a rebuilt series look alike


def rewind_points(
    conn: Connection, db: Database, scope: Scope, ref: tuple[Any, Any], iteration: Any
) -> int:
    """Discard the experiment's points with an iteration above ``iteration``; returns how many."""
    last_kept = validation.require_int(iteration, "iteration", minimum=0)
    pk = experiment_pk(conn, scope, *ref, write=True)
    rows = conn.execute(
        select(metric_series.c.id, metric_series.c.key, metric_series.c.phase)
        .where(metric_series.c.experiment_id == pk)
        .order_by(metric_series.c.id)
        .with_for_update()
    ).all()
    kept: list[SeriesChunk] = []
    removed = 0
    for series_id, key, phase in rows:
        columns = _stored_points(conn, series_id)
        keep = columns[0] <= last_kept
        if keep.all():
            continue
        removed += int((~keep).sum())
        _delete_series(conn, series_id)
        if keep.any():
            it, ep, v, t = (c[keep] for c in columns)
            kept.append(SeriesChunk(key, phase, it, ep, v, t))
    _append_again(conn, db, scope, ref, kept)
    return removed


def _stored_points(conn: Connection, series_id: int) -> tuple[np.ndarray, ...]:
    """Iterations, epochs, values and times of every stored point of the series."""
    query = (
        select(metric_chunks.c.data, metric_chunks.c.count)
        .where(metric_chunks.c.series_id == series_id)
        .order_by(metric_chunks.c.start)
    )
    return decode_chunks([(data, n) for data, n in conn.execute(query).all()])


def _delete_series(conn: Connection, series_id: int) -> None:
    tails = metric_rollup_tails.c
    conn.execute(delete(metric_rollup_tails).where(tails.series_id == series_id))
    blocks = metric_rollup_blocks.c
    conn.execute(delete(metric_rollup_blocks).where(blocks.series_id == series_id))
    conn.execute(delete(metric_chunks).where(metric_chunks.c.series_id == series_id))
    conn.execute(delete(metric_series).where(metric_series.c.id == series_id))


def _append_again(
    conn: Connection, db: Database, scope: Scope, ref: tuple[Any, Any], kept: list[SeriesChunk]
) -> None:
    """Append the kept points through ingest, under a client id of their own."""
    client_id = f"rewind-{uuid.uuid4().hex}"
    for seq, chunks in enumerate(_batches(kept)):
        append_points(conn, db, scope, ref, MetricBatch(client_id, seq, tuple(chunks)))


def _batches(kept: list[SeriesChunk]) -> list[list[SeriesChunk]]:
    """Each series in pieces of at most ``REWRITE_BATCH_POINTS``, one piece per batch."""
    batches: list[list[SeriesChunk]] = []
    for chunk in kept:
        for seq, first in enumerate(range(0, len(chunk), REWRITE_BATCH_POINTS)):
            part = slice(first, first + REWRITE_BATCH_POINTS)
            piece = SeriesChunk(
                chunk.key,
                chunk.phase,
                chunk.iterations[part],
                chunk.epochs[part],
                chunk.values[part],
                chunk.times[part],
            )
            if seq == len(batches):
                batches.append([])
            batches[seq].append(piece)
    return batches


class SqlRewind(SqlNoun):
    """``rewind_points`` of SqlStore (beside :class:`SqlPoints`, whose module this builds on)."""

    def rewind_points(self, project_id: int, experiment_id: int, iteration: int) -> int:
        with self._db.write() as conn:
            ref = (project_id, experiment_id)
            return rewind_points(conn, self._db, self._scope, ref, iteration)
