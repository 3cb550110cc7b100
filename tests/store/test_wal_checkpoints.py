"""SQLite's log is checkpointed beside this process's writes, not inside the commit that grew it
(store/sql/wal.py): a 20-60 ms checkpoint no longer holds the write lock every writer queues on."""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mltrail.store.sql import SqlStore, wal
from mltrail.store.sql.engine import make_engine

_FILL = (  # about 1,500 pages of log: past the threshold, in one commit
    "INSERT INTO scratch SELECT randomblob(4000) FROM (WITH RECURSIVE n(i) AS "
    "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) SELECT i FROM n)"
)


def test_a_commit_past_the_threshold_is_checkpointed_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.db"
    store = SqlStore.open(f"sqlite:///{path}")
    release, original = threading.Event(), wal.WalCheckpointer._checkpoint

    def held(self: wal.WalCheckpointer) -> None:
        assert release.wait(30)
        original(self)

    monkeypatch.setattr(wal.WalCheckpointer, "_checkpoint", held)
    try:
        db = store._db
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE scratch (b BLOB)")
        size = path.stat().st_size
        with db.write() as conn:
            conn.exec_driver_sql(_FILL)
        assert wal.log_bytes(f"{path}-wal") >= wal.CHECKPOINT_BYTES
        assert path.stat().st_size == size  # the commit did not copy the log into the file
        with db.write() as conn:  # a writer goes on while the checkpoint is due
            conn.exec_driver_sql("INSERT INTO scratch VALUES (x'00')")
        release.set()
        assert db._wal is not None
        db._wal.close()  # waits for the checkpoint
        assert path.stat().st_size > size + 1500 * 4000  # copied into the file
        with db.write() as conn:
            conn.exec_driver_sql("INSERT INTO scratch VALUES (x'01')")
        assert wal.log_bytes(f"{path}-wal") < 100_000  # the log restarted from the top
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM scratch").scalar() == 1502
    finally:
        release.set()
        store.close()


def _signalling(done: threading.Event) -> Callable[[wal.WalCheckpointer], None]:
    """The checkpoint, then ``done`` set."""
    checkpoint = wal.WalCheckpointer._checkpoint
    return lambda self: (checkpoint(self), done.set())[-1]


def test_one_kept_thread_takes_each_checkpoint_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = threading.Event()
    monkeypatch.setattr(wal.WalCheckpointer, "_checkpoint", _signalling(done))
    path = tmp_path / "k.db"
    store = SqlStore.open(f"sqlite:///{path}")
    db, threads = store._db, set()
    try:
        with db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE scratch (b BLOB)")
        for _ in range(3):
            with db.write() as conn:
                conn.exec_driver_sql(_FILL)
            assert done.wait(30)
            done.clear()
            assert db._wal is not None and db._wal._running is not None
            threads.add(db._wal._running)
            with db.write() as conn:  # finds the log copied: restarts it from the top
                conn.exec_driver_sql("INSERT INTO scratch VALUES (x'00')")
            assert wal.log_bytes(f"{path}-wal") < 100_000
        (thread,) = threads  # not a thread per checkpoint
        assert thread.is_alive()
    finally:
        store.close()
    assert not thread.is_alive()  # ended by close


def test_connections_keep_sqlites_own_checkpoint_as_a_safety_net(tmp_path: Path) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        with store._db.read() as conn:
            pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
            limit = conn.exec_driver_sql("PRAGMA journal_size_limit").scalar()
        assert pages * 4096 > wal.CHECKPOINT_BYTES and limit == 0
    finally:
        store.close()


def test_no_log_file_reads_as_an_empty_log(tmp_path: Path) -> None:
    assert wal.log_bytes(str(tmp_path / "missing.db-wal")) == 0


def test_in_memory_databases_have_no_checkpointer() -> None:
    store = SqlStore.open("sqlite://")
    try:
        store.create_project("p")
        assert store._db._wal is None
    finally:
        store.close()


@pytest.fixture
def due(tmp_path: Path) -> Iterator[wal.WalCheckpointer]:
    """A checkpointer whose log is past the threshold (the engine disposed after the test)."""
    path = tmp_path / "due.db"
    engine = make_engine(f"sqlite:///{path}")
    Path(f"{path}-wal").write_bytes(b"\0" * wal.CHECKPOINT_BYTES)  # only stat reads it
    yield wal.WalCheckpointer(engine, path)
    engine.dispose()


def test_a_thread_that_cannot_start_does_not_fail_the_committed_write(
    due: wal.WalCheckpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    due.after_commit()  # a committed write's caller must not see it fail
    monkeypatch.undo()
    due.after_commit()  # and the next commit still checkpoints
    assert due._running is not None
    due.close()


def test_no_checkpoint_starts_after_close(
    due: wal.WalCheckpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(wal.WalCheckpointer, "_checkpoint", lambda self: ran.append("ran"))
    due.close()
    due.after_commit()  # a write finishing after Database.close
    assert due._running is None and ran == []


def test_an_unexpected_failure_in_the_checkpoint_thread_is_swallowed(
    due: wal.WalCheckpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    escaped: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))

    def broken(*_: object) -> None:
        raise AssertionError("no driver connection")

    monkeypatch.setattr(due._engine, "connect", broken)
    due.after_commit()
    due.close()
    assert due._running is not None and escaped == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_child_forked_while_a_checkpoint_starts_can_checkpoint(
    due: wal.WalCheckpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal.WalCheckpointer, "_checkpoint", lambda self: None)
    with due._guard:  # another thread of the parent starting a checkpoint at the fork
        pid = os.fork()
        if pid == 0:  # the child: its first commit past the threshold must not hang
            signal.alarm(5)
            due.after_commit()
            os._exit(0 if due._running is not None else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_hung_checkpoint_does_not_hang_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint stuck in I/O (a stalled disk, a network filesystem: held here, as no real
    disk stalls on demand) used to hold Database.close forever (a join without a timeout);
    close now waits CLOSE_WAIT_SECONDS, says so, and goes on. SQLite's checkpoint is safe to
    abandon: the database reopens whole, and the checkpoint finishing late harms nothing."""
    path = tmp_path / "hung.db"
    store = SqlStore.open(f"sqlite:///{path}")
    release, original = threading.Event(), wal.WalCheckpointer._checkpoint

    def hung(self: wal.WalCheckpointer) -> None:
        release.wait()  # until the test ends: "forever" to close
        original(self)

    monkeypatch.setattr(wal.WalCheckpointer, "_checkpoint", hung)
    monkeypatch.setattr(wal, "CLOSE_WAIT_SECONDS", 0.5)
    db = store._db
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (b BLOB)")
    with db.write() as conn:
        conn.exec_driver_sql(_FILL)
    assert db._wal is not None and db._wal._running is not None  # the checkpoint is hung
    closing = threading.Thread(target=store.close, daemon=True)
    closing.start()
    closing.join(timeout=60)
    try:
        assert not closing.is_alive(), "close waited for the hung checkpoint"
        assert f"{path}: a WAL checkpoint still running" in caplog.text
        again = SqlStore.open(f"sqlite:///{path}")
        with again._db.write() as conn:
            conn.exec_driver_sql("INSERT INTO scratch VALUES (x'00')")
        release.set()  # the abandoned checkpoint finishes beside the new writes
        db._wal._running.join(timeout=60)
        with again._db.write() as conn:
            conn.exec_driver_sql("INSERT INTO scratch VALUES (x'01')")
        with again._db.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM scratch").scalar() == 1502
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        again.close()
    finally:
        release.set()


def _open_fds(path: Path) -> int:
    """This process's descriptors open on ``path`` or its log."""
    names = (str(path), f"{path}-wal")
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) in names)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_a_store_dropped_without_close_leaves_no_checkpoint_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store nobody closes (a notebook's, a script's helper) was freed with its connections
    when dropped; a checkpointing thread kept for good held it, its engine and its open files
    for the life of the process, one per database. An idle thread ends instead."""
    monkeypatch.setattr(wal, "IDLE_SECONDS", 0.2, raising=False)
    threads, files = [], []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.db"
        store = SqlStore.open(f"sqlite:///{path}")
        with store._db.write() as conn:
            conn.exec_driver_sql("CREATE TABLE scratch (b BLOB)")
        with store._db.write() as conn:
            conn.exec_driver_sql(_FILL)
        assert store._db._wal is not None and store._db._wal._running is not None
        threads.append(store._db._wal._running)
        files.append(path)
        del store, conn  # dropped, never closed
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "idle checkpoint threads kept"
    gc.collect()
    assert [_open_fds(p) for p in files] == [0, 0, 0]  # connections freed with their stores


def test_a_checkpoint_due_after_the_idle_thread_ended_starts_another(
    due: wal.WalCheckpointer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = threading.Semaphore(0)
    monkeypatch.setattr(wal.WalCheckpointer, "_checkpoint", lambda self: ran.release())
    monkeypatch.setattr(wal, "IDLE_SECONDS", 0.2, raising=False)
    due.after_commit()
    assert ran.acquire(timeout=30)
    first = due._running
    assert first is not None
    first.join(timeout=10)  # idle: ended
    assert not first.is_alive() and due._running is None
    due.after_commit()  # the log is still past the threshold: a new thread takes it
    assert ran.acquire(timeout=30)
    assert due._running is not None and due._running is not first
    due.close()
    assert not due._running.is_alive()
