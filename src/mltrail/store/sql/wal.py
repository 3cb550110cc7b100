"""SQLite's WAL checkpoints, run beside this process's writes instead of inside one of them.

SQLite checkpoints the write-ahead log (copies its pages into the database file and syncs it)
in the commit that grows it past 1,000 pages: 20-60 ms of a 50,000-point batch's commit, during
which this process's write lock (:meth:`engine.Database.write`) kept every other writer
waiting, so four runs ingesting at once stalled together. Connections here checkpoint by
themselves only past :data:`AUTOCHECKPOINT_PAGES`, a safety net; after a write transaction
commits, :meth:`WalCheckpointer.after_commit` sees the log holding :data:`CHECKPOINT_BYTES` or
more and asks the file's checkpointing thread (started on first need, kept) to checkpoint it
(``PASSIVE``). A passive checkpoint never blocks a writer, and the request that committed is
answered without waiting for it.

SQLite restarts the log from the top only at a write that finds every frame of it copied: a
checkpoint during which writers committed leaves their frames behind, the log stays past the
threshold, and the next commit asks again. With one-point appends (6-8 pages each, a commit
every 1-3 ms) that asked every 15 commits; a thread started for each checkpoint was a thread
start on the event loop each time (the caller waits until the new thread runs), a kept
thread is woken instead.

How much the log holds is read from its file's size (one ``stat`` a commit; never by opening
it or the ``-shm`` index: closing any descriptor of a file drops the process's POSIX locks on
it, SQLite's among them): the log is truncated when SQLite restarts it from the top
(``journal_size_limit``), so its size is what it holds.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from pathlib import Path

from sqlalchemy import Engine

log = logging.getLogger(__name__)

# SQLite's own default threshold (1,000 pages of 4 KiB): the log stays about as long as before
CHECKPOINT_BYTES = 4_096_000
# where a commit still checkpoints by itself: a log nobody checkpoints meanwhile (a process
# that only writes from the event loop, a checkpoint that keeps failing) stays bounded
AUTOCHECKPOINT_PAGES = 4_000

# how long close waits for a running checkpoint (a few hundred ms, or a minute on a slow disk)
# before it goes on without it: a checkpoint stuck in I/O must not hold a closing server or
# script forever, and SQLite's checkpoint is safe to abandon (the log keeps what it has not
# copied; the next checkpoint, this one finishing late, or the next open copies it)
CLOSE_WAIT_SECONDS = 60.0

# how long the checkpointing thread waits for the next checkpoint due before it ends (the next
# one due starts another): while commits come every few ms one is due every ~15 commits, and
# a thread kept for good held its file's engine, connections and descriptors for the life of
# the process, one per database, also for a store dropped without close
IDLE_SECONDS = 10.0

CONNECTION_PRAGMAS = (
    f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}",
    "PRAGMA journal_size_limit=0",  # truncated at each restart: its size is what it holds
)


class WalCheckpointer:
    """Checkpoints one SQLite file's log after the commits that grew it past the threshold, in
    one thread of its own, started at the first checkpoint due and kept until :meth:`close` or
    until none was due for :data:`IDLE_SECONDS`.

    Args:
        engine: the file's engine (a checkpoint takes a pooled connection of its own).
        path: the database file.
    """

    def __init__(self, engine: Engine, path: Path) -> None:
        self._engine = engine
        self._log = f"{path}-wal"
        self._guard = threading.Lock()
        self._wake = threading.Event()  # the thread's: a checkpoint is due, or it is closed
        self._due = False  # a commit asked for a checkpoint the thread has not begun
        self._running: threading.Thread | None = None
        self._closed = False  # by close: no checkpoint starts on a disposed engine
        _ALL.add(self)

    @classmethod
    def of_file(cls, engine: Engine) -> WalCheckpointer | None:
        """The checkpointer of a SQLite engine's file; None in memory (no log)."""
        name = engine.url.database or ""
        return None if name in ("", ":memory:") else cls(engine, Path(name).resolve())

    def after_commit(self) -> None:
        """Ask for a checkpoint when the log holds :data:`CHECKPOINT_BYTES` or more; returns
        at once (it never waits, so the event loop may call it too). Never raises: the write
        it follows is committed, and its caller must not read it as failed (and retry it)
        because no thread could be started."""
        if self._due or log_bytes(self._log) < CHECKPOINT_BYTES:
            return
        with self._guard:
            if self._closed:
                return
            if self._running is None or not self._running.is_alive():
                thread = threading.Thread(
                    target=self._serve, name="mltrail-wal-checkpoint", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError:  # no thread to be had: the next commit tries again
                    return
                self._running = thread
            self._due = True
        self._wake.set()

    def _serve(self) -> None:
        """The checkpointing thread: a checkpoint each time one is due, until closed (the
        one due then is still taken) or idle for :data:`IDLE_SECONDS`."""
        while True:
            woken = self._wake.wait(IDLE_SECONDS)
            self._wake.clear()
            with self._guard:
                due, self._due = self._due, False  # a commit from here on may ask again
                if not (woken or due or self._closed):  # idle: the next commit due starts one
                    if self._running is threading.current_thread():
                        self._running = None
                    return
            if due:
                self._checkpoint()
            if self._closed:
                return

    def _checkpoint(self) -> None:
        try:
            with self._engine.connect() as conn:
                driver = conn.connection.driver_connection
                assert driver is not None
                driver.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
        except Exception:  # locked, disk full, a disposed engine: none may reach the writer
            pass  # the next commit past the threshold tries again; SQLite's own net is below

    def close(self) -> None:
        """Wait for a running checkpoint (before the engine is disposed), at most
        :data:`CLOSE_WAIT_SECONDS`, then go on without it, saying so; none starts after."""
        with self._guard:
            self._closed = True
            running = self._running
        self._wake.set()  # the thread takes the checkpoint due, if any, and ends
        if running is None:
            return
        running.join(CLOSE_WAIT_SECONDS)
        if running.is_alive():  # a daemon thread: it ends with its I/O, or with the process
            log.warning(
                "%s: a WAL checkpoint still running after %.0f s; closing without it "
                "(the log keeps its pages, a later checkpoint copies them)",
                self._log.removesuffix("-wal"),
                CLOSE_WAIT_SECONDS,
            )


_ALL: weakref.WeakSet[WalCheckpointer] = weakref.WeakSet()


def _reset_in_child() -> None:
    """A forked child has none of the parent's threads: a guard one of them held (starting a
    checkpoint) would never be released, and the child's first commit past the threshold
    would wait for it forever."""
    for checkpointer in list(_ALL):
        checkpointer._guard, checkpointer._running = threading.Lock(), None
        checkpointer._wake, checkpointer._due = threading.Event(), False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


def log_bytes(log: str) -> int:
    """The size of the log file ``log`` (0 when there is none yet)."""
    try:
        return os.stat(log).st_size
    except OSError:
        return 0
