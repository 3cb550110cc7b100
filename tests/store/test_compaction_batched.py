"""Compaction merges every window an append completed with one read and one write
(chunks.compact_after_append), where it read, merged and wrote one window at a time: the
chunks stored must be exactly those the window-at-a-time merge stored (kept below as it was),
byte for byte, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Connection, delete, select

from mltrail.core.chunk_codec import MERGED_LEVEL, decode_chunks, encode_chunks
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore, points
from mltrail.store.sql.chunks import completed_windows, iteration_order
from mltrail.store.sql.engine import select_any
from mltrail.store.sql.tables import experiments, metric_chunks, metric_series


def _compact_one_window_at_a_time(conn: Connection, grown: list[tuple[int, int, int]]) -> int:
    """The compaction as it was: each window's chunks read, merged and written on their own."""
    windows = completed_windows(grown)  # which windows to search: the same rule
    starts: dict[int, list[int]] = {}
    tests = ("series_id =", "start >=", "start <")
    spans = [w[:3] for w in windows]
    for row in select_any(conn, metric_chunks, tests, spans, ("series_id", "start")):
        starts.setdefault(row["series_id"], []).append(row["start"])
    removed = 0
    for sid, low, high, least in windows:
        mine = starts.get(sid, [])
        inside = [s for s in mine if low <= s < high]
        if len(inside) >= least:
            removed += _merge_window(conn, sid, (low, high))
            starts[sid] = [s for s in mine if not low <= s < high] + [min(inside)]
    return removed


def _merge_window(conn: Connection, series_id: int, window: tuple[int, int]) -> int:
    c = metric_chunks.c
    where = (c.series_id == series_id, c.start >= window[0], c.start < window[1])
    rows = conn.execute(select(c.start, c.count, c.data).where(*where).order_by(c.start)).all()
    it, ep, v, t = decode_chunks([(data, n) for _, n, data in rows])
    order = iteration_order(it)
    if order is not None:
        it, ep, v, t = it[order], ep[order], v[order], t[order]
    conn.execute(delete(metric_chunks).where(*where))
    conn.execute(
        metric_chunks.insert().values(
            series_id=series_id, start=rows[0].start, count=len(it),
            first_iteration=int(it[0]), last_iteration=int(it[-1]),
            # packed in the store's formats (float32 bits, differences) and deflate level, as a
            # merge packs now
            data=encode_chunks(
                [SeriesChunk("", "", it, ep, v, t)], narrow=True, level=MERGED_LEVEL
            )[0],
        )
    )  # fmt: skip
    return len(rows) - 1


def _plan(rng: np.random.Generator) -> list[list[tuple[str, int, bool]]]:
    """Batches of (key, points, logged back) : 10-point flushes mostly, some larger batches
    completing a 4,096 window (at most 512 points: larger appends do not search one), small
    flushes completing a 64, a 256 and a 4,096 window at once, iterations going back."""
    plan = []
    for _ in range(330):
        batch = []
        for key in "abc":
            if rng.random() < 0.8:
                big = rng.random() < 0.04
                n = int(rng.integers(200, 513)) if big else int(rng.integers(1, 25))
                batch.append((key, n, bool(rng.random() < 0.1)))
        if batch:
            plan.append(batch)
    return plan


def _chunks(store: SqlStore, project: int, number: int) -> list[tuple[Any, ...]]:
    s, c, e = metric_series.c, metric_chunks.c, experiments.c
    pk = select(e.id).where(e.project_id == project, e.number == number).scalar_subquery()
    with store._db.read() as conn:
        keys = dict(conn.execute(select(s.id, s.key).where(s.experiment_id == pk)).all())
        query = select(c.series_id, c.start, c.count, c.first_iteration, c.last_iteration, c.data)
        rows = conn.execute(query.where(c.series_id.in_(keys))).all()
    return sorted((keys[r[0]], *r[1:5], bytes(r[5])) for r in rows)


def test_compaction_stores_the_chunks_merging_one_window_at_a_time_stored(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(31)
    store = SqlStore.open(db_url)
    p = store.create_project("compaction").id
    batched, reference = (store.create_experiment(p).experiment_id for _ in range(2))
    at = {"a": 0, "b": 0, "c": 0}
    for seq, batch in enumerate(_plan(rng)):
        chunks = []
        for key, n, back in batch:
            start = max(at[key] - int(rng.integers(1, 30)), 0) if back else at[key]
            it = np.sort(start + rng.integers(0, n + 1, n))
            at[key] = max(at[key], int(it[-1]) + 1)
            values = rng.normal(size=n)
            values[rng.random(n) < 0.05] = math.nan
            times = 1.7e9 + rng.integers(0, 10**6, n) / 1000.0
            chunks.append(SeriesChunk(key, "train", it, rng.integers(-1, 3, n), values, times))
        store.append_points(p, batched, MetricBatch("b", seq, tuple(chunks)))
        with monkeypatch.context() as patch:
            patch.setattr(points, "compact_after_append", _compact_one_window_at_a_time)
            store.append_points(p, reference, MetricBatch("r", seq, tuple(chunks)))
    got, want = _chunks(store, p, batched), _chunks(store, p, reference)
    assert sum(1 for row in got if row[2] >= 4096) >= 3  # 4,096-point windows were merged
    assert len(got) < 300
    assert got == want
    for key in "abc":
        a = store.read_series(p, batched, key, "train", times=True)
        b = store.read_series(p, reference, key, "train", times=True)
        assert a.iterations.tolist() == b.iterations.tolist()
        assert a.values.view(np.uint64).tolist() == b.values.view(np.uint64).tolist()
    store.close()


def test_on_sqlite_a_merge_takes_its_first_chunks_rowid_and_its_pages_empty_out(
    migrated_sqlite_url: str,
) -> None:
    """A merge stored at a new rowid (page order's end) left its long-lived chunk beside
    short-lived small ones, and the pages those left were up to half empty."""
    store = SqlStore.open(migrated_sqlite_url)
    p = store.create_project("rowids").id
    number = store.create_experiment(p).experiment_id
    walks = np.cumsum(np.random.default_rng(7).normal(0, 0.01, (1000, 20)), axis=0) + 1.0
    keys = [f"k{i:02d}" for i in range(20)]
    first_rowids: dict[str, int] = {}
    for seq in range(100):  # 10-point flushes of 20 series: 1,000 points each
        it = np.arange(seq * 10, seq * 10 + 10, dtype=np.int64)
        chunks = tuple(
            SeriesChunk(k, "train", it, np.full(10, -1), walks[it, j], 1.7e9 + it / 100.0)
            for j, k in enumerate(keys)
        )
        store.append_points(p, number, MetricBatch(None, None, chunks))
        if seq == 0:
            with store._db.read() as conn:
                first_rowids = dict(conn.exec_driver_sql(
                    "SELECT s.key, c.rowid FROM metric_chunks c JOIN metric_series s "
                    "ON s.id = c.series_id WHERE c.start = 0").all())  # fmt: skip
    with store._db.read() as conn:
        merged = dict(conn.exec_driver_sql(
            "SELECT s.key, c.rowid FROM metric_chunks c JOIN metric_series s "
            "ON s.id = c.series_id WHERE c.start = 0 AND c.count >= 256").all())  # fmt: skip
        stats = conn.exec_driver_sql(
            "SELECT sum(unused), sum(pgsize) FROM dbstat WHERE name = 'metric_chunks'"
        ).one()
    assert merged == first_rowids  # every series' 256-point merge at its first chunk's rowid
    assert stats[0] / stats[1] < 0.19, stats  # 0.182; 0.199 with merges at new rowids
    store.close()
