"""SQLite write transactions of one process queue on one lock per database file."""

from __future__ import annotations

import threading

import numpy as np

from mltrail.core.types import MetricBatch
from mltrail.store.sql import SqlStore
from support.factories import batch, chunk


def _batch(client: str, seq: int, start: int, n: int) -> MetricBatch:
    it = np.arange(start, start + n, dtype=np.int64)
    return batch(seq, chunk("loss", it, it * 0.5), client=client)


def test_write_holds_the_file_lock_shared_by_stores_on_that_file(migrated_sqlite_url: str) -> None:
    first, second = SqlStore.open(migrated_sqlite_url), SqlStore.open(migrated_sqlite_url)
    try:
        first.create_project("a")
        second.create_project("b")
        lock = first._db._write_lock
        assert lock is not None and lock is second._db._write_lock
        taken: list[bool] = []
        with first._db.write():
            probe = threading.Thread(target=lambda: taken.append(lock.acquire(blocking=False)))
            probe.start()
            probe.join()
        assert taken == [False]  # held for the whole transaction
        assert lock.acquire(blocking=False)  # and released after it
        lock.release()
    finally:
        first.close()
        second.close()


def test_in_memory_databases_do_not_share_a_lock() -> None:
    a, b = SqlStore.open("sqlite://"), SqlStore.open("sqlite://")
    try:
        a.create_project("a")
        b.create_project("b")
        assert a._db._write_lock is not b._db._write_lock
    finally:
        a.close()
        b.close()


def test_sixteen_threads_appending_store_every_point_once(migrated_sqlite_url: str) -> None:
    store = SqlStore.open(migrated_sqlite_url)
    try:
        project = store.create_project("p").id
        exps = [store.create_experiment(project).experiment_id for _ in range(16)]
        errors: list[BaseException] = []

        def writer(exp: int) -> None:
            try:
                for seq in range(1, 11):
                    store.append_points(project, exp, _batch(f"c{exp}", seq, seq * 100, 100))
                store.append_points(project, exp, _batch(f"c{exp}", 1, 100, 100))  # replay
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(e,)) for e in exps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        counts = [sum(s.count for s in store.list_series(project, e)) for e in exps]
        assert counts == [1000] * 16
    finally:
        store.close()
