"""The event loop's own SQLite connection, kept between its small writes and token checks.

A store call that must not wait (``store/waiting.py``: the MLflow surface's one-point writes
and their token checks, run on the server's event loop) took a pooled connection and gave it
back twice per request: SQLAlchemy's checkout, its ``Connection`` and the reset on return were
a tenth of a one-point log_metric's server CPU. Such calls now use one connection per thread,
taken from the pool once and kept. Each use leaves it as the pool's reset would: no
transaction open (SQLAlchemy's or the driver's) and no write option set; a use that fails
closes it, and the next takes a fresh one. A use inside another (a read within a write on the
same thread) gets a pooled connection of its own, as before. A forked child never uses its
parent's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection


class KeptConnections:
    """One kept connection per thread (and process) of a database.

    Args:
        take: a new connection from the pool (raising as the pool would).
        reset: what a use leaves undone on the connection before it is kept again.
    """

    def __init__(self, take: Callable[[], Connection], reset: Callable[[Connection], None]):
        self._take, self._reset = take, reset
        self._kept: dict[tuple[int, int], Connection] = {}
        self._busy: set[tuple[int, int]] = set()
        self._guard = threading.Lock()

    @contextmanager
    def use(self) -> Iterator[Connection]:
        """This thread's kept connection (a pooled one of its own inside another use)."""
        me = (os.getpid(), threading.get_ident())
        if me in self._busy:
            with self._take() as conn:
                yield conn
            return
        conn = self._kept.get(me) or self._take()
        self._busy.add(me)
        try:
            yield conn
            self._reset(conn)
        except BaseException:
            self._kept.pop(me, None)
            conn.close()  # back to the pool, reset there; the next use takes another
            raise
        else:
            with self._guard:
                self._kept[me] = conn
        finally:
            self._busy.discard(me)

    def close(self) -> None:
        """Give every kept connection of this process back (before the engine is disposed)."""
        with self._guard:
            mine = [k for k in self._kept if k[0] == os.getpid()]
            conns = [self._kept.pop(k) for k in mine]
        for conn in conns:
            conn.close()
