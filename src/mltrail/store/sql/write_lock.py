"""The write lock of a SQLite file: one queue for its writers, in this process and in others.

SQLite's own lock makes a waiting writer poll with sleeps (its busy handler sleeps 1, 2, 5,
10, ... up to 100 ms between tries), so writers in several processes (``mltrail server
--workers 4``, a training run beside the server) slept on after the lock was free, and a
writer that just committed took it again first. So a writer takes this process's lock for the
file (a thread lock: its threads queue on it) and then an ``flock`` on a file beside the
database (``<database>-writers``), on which writers of other processes wait in the kernel until
it is released, before its ``BEGIN IMMEDIATE``: SQLite's lock is then free unless a program
that does not take this lock holds it (SQLite's busy timeout still applies to it).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

SUFFIX = "-writers"


class FileWriteLock:
    """The write lock of one SQLite file, re-entrant within a thread (a nested write meets
    SQLite's own lock, as it would without this lock, instead of hanging here)."""

    def __init__(self, database: Path | None) -> None:
        self._lock = threading.RLock()
        self._path = None if database is None else str(database) + SUFFIX
        self._depth = 0  # the holding thread's nested acquisitions
        self._fd: int | None = None  # the lock file while held (closing it releases the flock)

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
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self._lock.release()

    def __enter__(self) -> FileWriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _lock_file(self, blocking: bool) -> bool:
        """Lock the file beside the database; False when another process holds it and not
        ``blocking``. A folder where the file cannot be made leaves SQLite's lock alone, as
        before (read-only: no write would get far anyway)."""
        if self._path is None:
            return True
        try:  # flock needs no write access: a file another user made serves as well
            fd = os.open(self._path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True


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
