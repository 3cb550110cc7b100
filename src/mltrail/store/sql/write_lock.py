"""The write lock of a SQLite file: one queue for its writers, in this process and in others.

SQLite's own lock makes a waiting writer poll with sleeps (its busy handler sleeps 1, 2, 5,
10, ... up to 100 ms between tries), so writers in several processes (``mltrail server
--workers 4``, a training run beside the server) slept on after the lock was free, and a
writer that just committed took it again first. So a writer takes this process's lock for the
file (a thread lock: its threads queue on it) and then an ``flock`` on a file beside the
database (``<database>-writers``) before its ``BEGIN IMMEDIATE``: writers of other processes
try it again every :data:`POLL_MAX_SECONDS` at most (from a tenth of a millisecond up), so
they follow its release within a couple of milliseconds. SQLite's lock is then free unless a
program that does not take this lock holds it (SQLite's busy timeout still applies to it).

The wait is bounded: past :data:`WAIT_SECONDS` a writer goes ahead without the file lock, to
SQLite's own lock and busy timeout (30 s more) as before, so a holder that stopped (a paused
process, one stuck in a debugger) makes writes fail, never hang. A forked child (a data
loader's worker forked while the writer thread held or waited for the lock) closes its copy of
the file at once: an ``flock`` belongs to the open file, so the copy would otherwise keep the
lock for as long as the child lives; and it forgets a thread lock held by a thread of the
parent, which does not run in the child. Where ``fcntl`` is missing (Windows), the thread
lock and SQLite's own lock remain.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX (Windows): this process's thread lock and SQLite's lock only
    fcntl = None  # type: ignore[assignment]

SUFFIX = "-writers"
WAIT_SECONDS = 30.0  # the longest a writer waits for the file lock (SQLite's busy timeout)
POLL_MIN_SECONDS = 0.0001  # the first pause between tries; doubled up to the next
POLL_MAX_SECONDS = 0.002


class FileWriteLock:
    """The write lock of one SQLite file, re-entrant within a thread (a nested write meets
    SQLite's own lock, as it would without this lock, instead of hanging here)."""

    def __init__(self, database: Path | None) -> None:
        self._lock = threading.RLock()
        self._path = None if database is None or fcntl is None else str(database) + SUFFIX
        self._depth = 0  # the holding thread's nested acquisitions
        # the lock file while the thread lock's holder waits for its flock or holds it (closing
        # it releases the flock); touched by that thread only, and by a forked child
        self._fd: int | None = None
        _HOLDERS.add(self)

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock, waiting for it unless not ``blocking``; whether it was taken."""
        if not self._lock.acquire(blocking=blocking):
            return False
        try:
            if self._depth == 0 and not self._lock_file(blocking):
                self._lock.release()
                return False
        except BaseException:
            self._lock.release()
            raise
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._close()
        self._lock.release()

    def __enter__(self) -> FileWriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _lock_file(self, blocking: bool) -> bool:
        """Lock the file beside the database; False when another process holds it and not
        ``blocking``. A folder where the file cannot be made leaves SQLite's lock alone, as
        before (read-only: no write would get far anyway), and so does a wait past
        :data:`WAIT_SECONDS`."""
        if self._path is None:
            return True
        try:  # flock needs no write access: a file another user made serves as well
            fd = self._fd = os.open(self._path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:
            return True
        try:
            taken = _try_lock(fd) or (blocking and _wait_for_lock(fd))
        except BaseException:
            self._close()
            raise
        if not taken:
            self._close()
        # a blocking writer past the wait (a holder that stopped): SQLite's lock decides
        return taken or blocking

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _forget_in_child(self) -> None:
        """In a forked child: close the copy of a lock file held or waited for (the parent
        keeps its own; the copy would hold the lock after the parent let go), and forget a
        thread lock held by a thread of the parent (none of them runs here: it would never be
        released). The forking thread's own hold stays, for it to release."""
        self._close()
        if not self._lock._is_owned():  # type: ignore[attr-defined]
            self._lock = threading.RLock()
            self._depth = 0


def _try_lock(fd: int) -> bool:
    assert fcntl is not None  # a lock file is only used where it is
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _wait_for_lock(fd: int) -> bool:
    """Try the lock until it is taken (True) or :data:`WAIT_SECONDS` passed (False)."""
    deadline = time.monotonic() + WAIT_SECONDS
    pause = POLL_MIN_SECONDS
    while time.monotonic() < deadline:
        time.sleep(pause)
        if _try_lock(fd):
            return True
        pause = min(pause * 2, POLL_MAX_SECONDS)
    return False


_HOLDERS: weakref.WeakSet[FileWriteLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_HOLDERS):
        lock._forget_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


_LOCKS: dict[str, FileWriteLock] = {}
_GUARD = threading.Lock()


def file_write_lock(database: str | None) -> FileWriteLock:
    """The process-wide write lock of a SQLite file (``database`` as its URL names it; each
    in-memory database has one of its own)."""
    if database in (None, "", ":memory:"):
        return FileWriteLock(None)
    path = Path(database).resolve()
    with _GUARD:
        found = _LOCKS.get(str(path))
        if found is None:
            found = _LOCKS[str(path)] = FileWriteLock(path)
        return found
