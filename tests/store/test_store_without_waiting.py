"""Inside ``without_waiting`` a store transaction begins at once or raises WouldWait, having
changed nothing (the server runs small MLflow writes on its event loop this way)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mltrail.core.types import ExperimentRef, MetricBatch
from mltrail.store.sql import SqlStore
from mltrail.store.sql.engine import BUSY_TIMEOUT_MS
from mltrail.store.waiting import WouldWait, waiting_forbidden, without_waiting
from support.factories import chunk


def _one_point(step: int) -> MetricBatch:
    return MetricBatch(None, 0, (chunk("loss", [step], np.array([0.5])),))


@pytest.fixture
def sqlite_run(migrated_sqlite_url: str) -> Iterator[tuple[SqlStore, ExperimentRef]]:
    store = SqlStore.open(migrated_sqlite_url)
    project = store.create_project("p")
    yield store, store.create_experiment(project.id)
    store.close()


def _count(store: SqlStore, ref: ExperimentRef) -> int:
    return sum(s.count for s in store.list_series(ref.project_id, ref.experiment_id))


def _busy_timeouts(store: SqlStore) -> set[int]:
    """The busy timeout of every pooled connection (all checked out at once)."""
    pool = store._db.engine.pool
    conns = [store._db.engine.connect() for _ in range(pool.checkedin() + 1)]  # type: ignore[attr-defined]
    try:
        return {c.exec_driver_sql("PRAGMA busy_timeout").scalar_one() for c in conns}
    finally:
        for c in conns:
            c.close()


def test_a_free_write_goes_ahead(sqlite_run) -> None:
    store, ref = sqlite_run
    with without_waiting():
        assert waiting_forbidden()
        store.append_points(ref.project_id, ref.experiment_id, _one_point(0))
    assert not waiting_forbidden()
    assert _count(store, ref) == 1
    assert _busy_timeouts(store) == {BUSY_TIMEOUT_MS}


def test_a_write_behind_this_process_lock_would_wait(sqlite_run) -> None:
    store, ref = sqlite_run
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._db.write():
            holding.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        holding.wait()
        with without_waiting(), pytest.raises(WouldWait):
            store.append_points(ref.project_id, ref.experiment_id, _one_point(0))
    finally:
        release.set()
        holder.join()
    assert _count(store, ref) == 0  # nothing half-written
    store.append_points(ref.project_id, ref.experiment_id, _one_point(0))  # the retry
    assert _count(store, ref) == 1


@pytest.mark.timeout(20)  # waiting would take the 30 s busy timeout
def test_a_write_behind_another_connections_lock_would_wait_and_keeps_the_timeout(
    sqlite_run, sqlite_url: str
) -> None:
    store, ref = sqlite_run
    other = sqlite3.connect(Path(sqlite_url.removeprefix("sqlite:///")), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with without_waiting(), pytest.raises(WouldWait):
            store.append_points(ref.project_id, ref.experiment_id, _one_point(0))
        store.list_series(ref.project_id, ref.experiment_id)  # reads go on meanwhile (WAL)
    finally:
        other.execute("COMMIT")
        other.close()
    assert _busy_timeouts(store) == {BUSY_TIMEOUT_MS}
    with without_waiting():
        store.append_points(ref.project_id, ref.experiment_id, _one_point(0))
    assert _count(store, ref) == 1


def test_a_read_with_every_pooled_connection_taken_would_wait(sqlite_run) -> None:
    store, ref = sqlite_run
    engine = store._db.engine
    taken = []
    try:
        while engine.pool.checkedout() < engine.pool.size() + engine.pool._max_overflow:  # type: ignore[attr-defined]
            taken.append(engine.connect())
        with without_waiting(), pytest.raises(WouldWait):
            store.list_series(ref.project_id, ref.experiment_id)
    finally:
        for conn in taken:
            conn.close()
    with without_waiting():
        assert store.list_series(ref.project_id, ref.experiment_id) == []


def test_postgresql_never_goes_ahead_without_waiting(migrated_pg_url: str) -> None:
    store = SqlStore.open(migrated_pg_url)
    try:
        ref = store.create_experiment(store.create_project("p").id)
        with without_waiting():
            with pytest.raises(WouldWait):
                store.list_series(ref.project_id, ref.experiment_id)
            with pytest.raises(WouldWait):
                store.append_points(ref.project_id, ref.experiment_id, _one_point(0))
        assert _count(store, ref) == 0
    finally:
        store.close()
