"""SQLite write transactions of one process queue on one lock per database file."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from mltrail.core.types import MetricBatch
from mltrail.store.sql import SqlStore, write_lock
from mltrail.store.waiting import WouldWait, without_waiting
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


@contextmanager
def _held_by_another_process(url: str) -> Iterator[int]:
    """The file lock held through an open file of its own (given), as another process's
    writer holds it, until the block ends."""
    other = os.open(url.removeprefix("sqlite:///") + write_lock.SUFFIX, os.O_RDONLY)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        yield other
    finally:
        os.close(other)  # releases its lock


def _start_write(
    store: SqlStore, project: int, exp: int
) -> tuple[threading.Thread, threading.Event]:
    """A thread appending 10 points, and the event it sets once they are stored."""
    done = threading.Event()

    def write() -> None:
        store.append_points(project, exp, _batch("c", 1, 0, 10))
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    return writer, done


def test_writers_of_other_processes_queue_on_the_file_beside_the_database(
    migrated_sqlite_url: str,
) -> None:
    """Another process's writer holds the lock: a write that must not wait gives up at once, a
    write waits for the file lock, not in SQLite's busy handler's sleeps, and goes ahead when
    that writer lets go."""
    store = SqlStore.open(migrated_sqlite_url)
    try:
        project = store.create_project("p").id
        exp = store.create_experiment(project).experiment_id
        with _held_by_another_process(migrated_sqlite_url):
            with without_waiting(), pytest.raises(WouldWait):
                store.append_points(project, exp, _batch("c", 1, 0, 10))
            writer, done = _start_write(store, project, exp)
            assert not done.wait(0.3)  # queued behind the other process's writer
        writer.join(10)
        assert done.is_set()
        assert [s.count for s in store.list_series(project, exp)] == [10]
    finally:
        store.close()


def test_a_stopped_holder_of_the_file_lock_delays_a_write_only_so_long(
    migrated_sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that never lets go (a paused process) makes a writer go ahead to SQLite's own
    lock after the bounded wait, instead of hanging."""
    monkeypatch.setattr(write_lock, "WAIT_SECONDS", 0.3)
    store = SqlStore.open(migrated_sqlite_url)
    try:
        project = store.create_project("p").id
        exp = store.create_experiment(project).experiment_id
        with _held_by_another_process(migrated_sqlite_url):
            writer, done = _start_write(store, project, exp)
            assert done.wait(20)  # not held up for good while the holder still holds it
        writer.join()
        assert [s.count for s in store.list_series(project, exp)] == [10]
    finally:
        store.close()


@contextmanager
def _forked_child_alive(*not_its: int) -> Iterator[None]:
    """A forked child (its fork hooks run) that lives until the block ends, closing at once
    the files ``not_its`` (those of another process, which a real child would not have)."""
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: stays alive until the parent checked
        for fd in not_its:
            os.close(fd)
        os.close(write)
        os.write(ready_write, b"r")
        os.read(read, 1)
        os._exit(0)
    os.close(read)
    os.close(ready_write)
    try:
        assert os.read(ready_read, 1) == b"r"
        os.close(ready_read)
        yield
    finally:
        os.close(write)  # the child ends
        os.waitpid(pid, 0)


def _nobody_holds(url: str) -> bool:
    """Whether another process's try of the file lock succeeds at once."""
    other = os.open(url.removeprefix("sqlite:///") + write_lock.SUFFIX, os.O_RDONLY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(other)
    return True


def test_a_child_forked_while_the_lock_is_held_does_not_keep_it(migrated_sqlite_url: str) -> None:
    """flock belongs to the open file: a forked child's copy would hold the lock after the
    parent released it, for as long as the child lives; the child closes its copy."""
    store = SqlStore.open(migrated_sqlite_url)
    try:
        store.create_project("p")
        lock = store._db._write_lock
        assert lock is not None
        with lock:
            child = _forked_child_alive()
            child.__enter__()
        try:
            assert _nobody_holds(migrated_sqlite_url)
        finally:
            child.__exit__(None, None, None)
    finally:
        store.close()


def test_a_child_forked_while_a_writer_waits_does_not_keep_the_lock(
    migrated_sqlite_url: str,
) -> None:
    """The file a writer waits on is closed in a forked child too: its copy would take over
    the lock the parent's writer gets, for the child's life."""
    store = SqlStore.open(migrated_sqlite_url)
    try:
        store.create_project("p")
        lock = store._db._write_lock
        assert lock is not None
        got, done = threading.Event(), threading.Event()

        def writer() -> None:
            with lock:
                got.set()
                done.wait(10)

        with _held_by_another_process(migrated_sqlite_url) as other:
            thread = threading.Thread(target=writer)
            thread.start()
            _wait_for(lambda: lock._fd is not None)  # opened the file, waiting for its lock
            child = _forked_child_alive(other)
            child.__enter__()
        try:
            assert got.wait(10)
            done.set()
            thread.join(10)
            assert _nobody_holds(migrated_sqlite_url)
        finally:
            child.__exit__(None, None, None)
    finally:
        store.close()


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)
