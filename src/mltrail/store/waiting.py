"""Store calls that must not wait: the server runs a small write on its event loop only when
it can go ahead at once, and in a worker thread otherwise.

Inside :func:`without_waiting`, a SqlStore on SQLite takes its write lock only if it is free
(this process's lock without blocking, SQLite's file lock with no busy timeout) and raises
:class:`WouldWait` instead of waiting for either; on PostgreSQL every transaction would wait on
the network, so each raises :class:`WouldWait` before it begins. A call that raised it changed
nothing: it is run again, outside, in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_FORBIDDEN: ContextVar[bool] = ContextVar("mltrail_store_without_waiting", default=False)


class WouldWait(Exception):
    """A store call inside :func:`without_waiting` would have waited (on a lock, the network);
    the transaction it was about to begin never began."""


@contextmanager
def without_waiting() -> Iterator[None]:
    """Store transactions begun inside raise :class:`WouldWait` rather than wait."""
    token = _FORBIDDEN.set(True)
    try:
        yield
    finally:
        _FORBIDDEN.reset(token)


def waiting_forbidden() -> bool:
    """Whether the caller is inside :func:`without_waiting`."""
    return _FORBIDDEN.get()
