"""Ingest receipts kept as runs of seqs (``ingest_ranges``, migration 0017): a batch lands once
whatever order its seqs come in and however often each is sent again; the migration turns
a receipt a row into the runs of those seqs, and back."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select, text

from mltrail.core.types import LogBatch, LogLine, MetricBatch
from mltrail.store.sql import SqlStore
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.tables import ingest_ranges
from support.factories import chunk
from support.stores import migrate


def _runs(store: SqlStore) -> list[tuple[str, str, int, int]]:
    c = ingest_ranges.c
    with store._db.engine.connect() as conn:
        found = conn.execute(select(c.kind, c.client_id, c.low, c.high)).all()
    return sorted(tuple(r) for r in found)


def _seqs(runs: list[tuple[str, str, int, int]], kind: str, client: str) -> list[int]:
    return sorted(s for k, c, lo, hi in runs if (k, c) == (kind, client) for s in range(lo, hi + 1))


@pytest.mark.parametrize("seed", range(3))
def test_each_batch_lands_once_in_any_order_and_the_runs_never_overlap(
    migrated_db_url: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    store = SqlStore.open(migrated_db_url)
    try:
        project = store.create_project("receipts").id
        number = store.create_experiment(project).experiment_id
        # mostly in order, with resends and a few seqs held back and sent late
        order = list(range(60))
        late = [order.pop(int(rng.integers(len(order)))) for _ in range(8)]
        order += late
        sent = [s for s in order for _ in range(int(rng.integers(1, 3)))]
        sent += rng.choice(order, 15).tolist()
        landed = []
        for client in ("a", "b"):
            for seq in sent:
                batch = MetricBatch(client, seq, (chunk(f"m_{client}", [seq], [float(seq)]),))
                landed.append(store.append_points(project, number, batch))
        runs = _runs(store)
        for client in ("a", "b"):
            got = store.read_series(project, number, f"m_{client}", "train")
            assert sorted(got.iterations.tolist()) == list(range(60))
            assert _seqs(runs, "points", client) == list(range(60))  # no seq in two runs
        assert sum(landed) == 120
        assert len(runs) < 2 * 30  # runs, not a row a batch
    finally:
        store.close()


def test_log_batches_keep_receipts_of_their_own_kind(migrated_db_url: str) -> None:
    store = SqlStore.open(migrated_db_url)
    try:
        project = store.create_project("receipts").id
        number = store.create_experiment(project).experiment_id
        for seq in (0, 1, 1, 0, 2):
            line = LogLine(1.0 + seq, "stdout", "INFO", f"line {seq}")
            store.append_logs(project, number, LogBatch("a", seq, (line,)))
            store.append_points(project, number, MetricBatch("a", seq, (chunk("m", [seq], [1.0]),)))
        assert _runs(store) == [("logs", "a", 0, 2), ("points", "a", 0, 2)]
        assert len(store.read_series(project, number, "m", "train").values) == 3
    finally:
        store.close()


_RECEIPTS = {("points", "a"): [0, 1, 2, 3, 4, 7, 9, 10], ("points", "b"): [0, 1, 2],
             ("logs", "a"): [5]}  # fmt: skip


def test_the_migration_turns_receipts_into_runs_and_back(db_url: str) -> None:
    url = db_url
    migrate(url, "0016_log_blocks", down=False)
    db = Database(make_engine(url))
    with db.write() as conn:
        conn.execute(text("INSERT INTO projects (display_name, description, created_at, "
                          "next_experiment) VALUES ('old', '', 0, 2)"))  # fmt: skip
        conn.execute(text("INSERT INTO experiments (project_id, number, display_name, "
                          "description, status, created_at, updated_at, hyperparameters, "
                          "environment, source, tags, stop_requested, log_count) VALUES (1, 1, "
                          "'old', '', 'done', 0, 0, '{}', '{}', '{}', '[]', false, 0)"))  # fmt: skip
        for (kind, client), seqs in _RECEIPTS.items():
            for seq in seqs:
                conn.execute(text("INSERT INTO ingest_batches (experiment_id, kind, client_id, "
                                  "seq, created_at) VALUES (1, :k, :c, :s, 0)"),
                             {"k": kind, "c": client, "s": seq})  # fmt: skip
    db.close()
    store = SqlStore.open(url)  # migrates to the head
    try:
        assert _runs(store) == [("logs", "a", 5, 5), ("points", "a", 0, 4), ("points", "a", 7, 7),
                                ("points", "a", 9, 10), ("points", "b", 0, 2)]  # fmt: skip
        batch = MetricBatch("a", 3, (chunk("m", [3], [1.0]),))
        assert store.append_points(1, 1, batch) == 0  # stored before the upgrade
        assert store.append_points(1, 1, MetricBatch("a", 5, batch.chunks)) == 1
    finally:
        store.close()
    migrate(url, "0016_log_blocks", down=True)
    db = Database(make_engine(url))
    with db.read() as conn:
        rows = conn.execute(text("SELECT kind, client_id, seq FROM ingest_batches")).all()
    db.close()
    want = {(k, c, s) for (k, c), seqs in _RECEIPTS.items() for s in seqs} | {("points", "a", 5)}
    assert sorted(tuple(r) for r in rows) == sorted(want)
