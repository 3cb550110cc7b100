"""The event loop's kept connection (store/sql/kept_connection.py): calls that must not wait
reuse one connection per thread, which each use leaves with no transaction open, so it never
pins an old snapshot nor holds a lock; a failed use and a nested use do not keep theirs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from mltrail.core.types import ExperimentRef, MetricBatch
from mltrail.store.sql import SqlStore
from mltrail.store.waiting import without_waiting
from support.factories import chunk


@pytest.fixture
def run(migrated_sqlite_url: str) -> Iterator[tuple[SqlStore, ExperimentRef]]:
    store = SqlStore.open(migrated_sqlite_url)
    yield store, store.create_experiment(store.create_project("p").id)
    store.close()


def _append(store: SqlStore, ref: ExperimentRef, step: int) -> None:
    batch = MetricBatch(None, 0, (chunk("loss", [step], np.array([0.5])),))
    store.append_points(ref.project_id, ref.experiment_id, batch)


def _count_now(store: SqlStore, ref: ExperimentRef) -> int:
    with without_waiting():
        return sum(s.count for s in store.list_series(ref.project_id, ref.experiment_id))


def _driver(store: SqlStore) -> object:
    """The driver connection the calling thread's kept connection wraps."""
    with without_waiting(), store._db.lone_read() as conn:
        return conn.connection.driver_connection


def test_calls_that_must_not_wait_keep_one_connection_and_no_transaction(run) -> None:
    store, ref = run
    with without_waiting():
        _append(store, ref, 0)
    kept = _driver(store)
    assert _count_now(store, ref) == 1 and _driver(store) is kept
    assert not kept.in_transaction  # type: ignore[attr-defined]
    other = threading.Thread(target=_append, args=(store, ref, 1))  # a write elsewhere
    other.start()
    other.join()
    assert _count_now(store, ref) == 2  # seen: the kept connection holds no old snapshot
    with without_waiting():
        _append(store, ref, 2)
    assert _driver(store) is kept and _count_now(store, ref) == 3


def test_a_failed_use_is_not_kept_and_a_nested_use_gets_its_own(run) -> None:
    store, _ = run
    kept = _driver(store)
    with without_waiting(), store._db.lone_read() as outer, store._db.lone_read() as inner:
        assert outer.connection.driver_connection is kept
        assert inner.connection.driver_connection is not kept
    with pytest.raises(ZeroDivisionError), without_waiting(), store._db.write():
        1 / 0  # noqa: B018
    assert _driver(store) is not kept


def test_close_gives_the_kept_connection_back(run) -> None:
    store, _ = run
    _driver(store)
    pool = store._db.engine.pool
    assert pool.checkedout() == 1  # type: ignore[attr-defined]
    assert store._db._kept is not None
    store._db._kept.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
