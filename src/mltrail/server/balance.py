"""Connections spread over the processes of ``mltrail server --workers N``.

The workers share one listening socket. Left to the kernel and asyncio, every worker's event
loop is woken by each new connection and the first to run takes all that are pending (asyncio
accepts up to its backlog per wake-up), so the four keep-alive connections of four readers
that connect at once often all land on one worker while the other idles (1, 3 or 0, 4 in five
of six runs of the benchmark's compare view). ``SO_REUSEPORT`` listeners, what gunicorn and
others offer, spread connections by a hash of their addresses: random again for a handful of
connections.

Here each worker accepts one connection at a time, and only while it holds no more open
connections than the least loaded worker (counts kept in memory the workers share, as
``least_conn`` in nginx or ``leastconn`` in HAProxy balance): a busier worker leaves a pending
connection to the idler one and looks again :data:`RECHECK_SECONDS` later (no polling while
nothing is pending). A connection that the least loaded workers left pending for
:data:`STALL_SECONDS` (their loops are stuck) is taken anyway, and so are the ones after it,
until one of them accepts again; a worker that stopped accepting (its graceful shutdown) or
exited does not count (:meth:`ConnectionCounts.leave`), so a stuck or dead worker never stops
the others. A worker still starting counts none open: connections wait for it, a stall at
most.
A connection leaves a worker's count however uvicorn lets go of it (``discard``, or
``remove`` as its WebSocket protocols do).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import mmap
import socket
from collections.abc import Callable, Iterable
from typing import Any

RECHECK_SECONDS = 0.005  # a busier worker's next look at a pending connection
# a connection left pending this long by the others is taken anyway: a worker's first request
# imports the API's modules on its event loop, which held a loaded machine's loop for 0.5 s
STALL_SECONDS = 2.0
RETRY_SECONDS = 1.0  # after running out of file descriptors or memory (as asyncio waits)
GONE = 2**62  # the count of a worker that exited or stopped accepting: never the least loaded
RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

logger = logging.getLogger(__name__)


class ConnectionCounts:
    """Open connections and connections accepted so far, per worker, in anonymous shared
    memory: made before the workers fork, read and written by all of them (each writes only
    its own slots, an aligned 8-byte store)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._memory = mmap.mmap(-1, 16 * workers)  # MAP_SHARED: survives fork() shared
        slots = memoryview(self._memory).cast("q")
        # a worker still starting counts 0: the first connections wait for it (one stall at
        # most), or keep-alive connections opened as the server comes up would all stay on the
        # worker that started first
        self._open, self._accepted = slots[:workers], slots[workers:]

    def set_open(self, worker: int, count: int) -> None:
        if self._open[worker] != GONE:
            self._open[worker] = count

    def count_accept(self, worker: int) -> None:
        self._accepted[worker] += 1

    def leave(self, worker: int) -> None:
        """``worker`` exited or stopped accepting: the others no longer leave connections
        to it."""
        self._open[worker] = GONE

    def open(self, worker: int) -> int:
        return int(self._open[worker])

    def busier(self, worker: int) -> bool:
        """Whether another worker holds fewer open connections than ``worker``."""
        return self._open[worker] > min(self._open)

    def idlest_accepts(self, worker: int) -> tuple[int, ...]:
        """The connections accepted so far by each other worker holding the fewest open (the
        ones ``worker`` leaves a pending connection to): unchanged while they accept none."""
        low = min(self._open)
        return tuple(
            int(self._accepted[w]) if self._open[w] == low else -1
            for w in range(self.workers)
            if w != worker
        )


class PublishingSet(set[Any]):
    """uvicorn's set of a worker's open connections, calling ``changed`` after each change."""

    def __init__(self, changed: Callable[[], None], items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self._changed = changed

    def add(self, item: Any) -> None:
        super().add(item)
        self._changed()

    def discard(self, item: Any) -> None:
        super().discard(item)
        self._changed()

    def remove(self, item: Any) -> None:  # uvicorn's WebSocket protocols remove themselves
        super().remove(item)
        self._changed()


class BalancedListener:
    """Accepts a worker's share of the connections of a listening socket shared with other
    workers, handing each to ``protocol_factory`` on the running loop.

    Args:
        sock: the listening socket (non-blocking once started).
        counts: the workers' shared counts.
        worker: this worker's index in ``counts``.
    """

    def __init__(self, sock: socket.socket, counts: ConnectionCounts, worker: int) -> None:
        self._sock = sock
        self._counts = counts
        self._worker = worker
        self._connections: set[Any] = set()
        self._pending = 0  # accepted, protocol not connected yet
        self._factory: Callable[[], asyncio.Protocol] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False
        # since when a pending connection waits for the idlest others, and their accepts then
        self._stall: tuple[float, tuple[int, ...]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def track(self, connections: set[Any]) -> PublishingSet:
        """The set to hold this worker's open connections in place of ``connections``."""
        self._connections = PublishingSet(self._publish, connections)
        return self._connections

    def start(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        """Accept on the running loop from now on."""
        self._factory = protocol_factory
        self._loop = asyncio.get_running_loop()
        self._sock.setblocking(False)
        self._publish()
        self._watch()

    def stop(self) -> None:
        """Accept no more connections (those open stay); the others take every new one."""
        self._counts.leave(self._worker)
        self._unwatch()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._factory = None

    def _publish(self) -> None:
        self._counts.set_open(self._worker, len(self._connections) + self._pending)
        if self._timer is not None and not self._counts.busier(self._worker):
            self._timer.cancel()  # a connection closed: this worker may take the next one now
            self._timer = None
            self._watch()

    def _watch(self) -> None:
        if not self._reading and self._loop is not None and self._factory is not None:
            self._loop.add_reader(self._sock.fileno(), self._readable)
            self._reading = True

    def _unwatch(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def _pause(self, seconds: float) -> None:
        assert self._loop is not None
        self._unwatch()
        self._timer = self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self._timer = None
        self._watch()

    def _readable(self) -> None:
        """A connection is pending: take it, unless another worker is less loaded (and not
        stuck)."""
        waiting = self._counts.busier(self._worker)
        if waiting and not self._stalled():
            self._pause(RECHECK_SECONDS)
            return
        try:
            conn, _address = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as exc:
            if exc.errno not in RESOURCE_ERRORS:
                raise
            logger.error("accepting a connection: %s; retrying in %g s", exc, RETRY_SECONDS)
            self._pause(RETRY_SECONDS)
            return
        if not waiting:  # taken in turn; after a stall, the stalled ones stay passed over
            self._stall = None  # until they accept again
        self._counts.count_accept(self._worker)
        self._pending += 1
        self._publish()
        assert self._loop is not None and self._factory is not None
        task = self._loop.create_task(self._connect(conn, self._factory))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stalled(self) -> bool:
        """Whether connections have been pending for :data:`STALL_SECONDS` while none of
        the idlest other workers accepted any (their loops stuck). Once so, it stays so until
        one of them accepts again: a burst is not taken one connection per stall."""
        assert self._loop is not None
        now, idlest = self._loop.time(), self._counts.idlest_accepts(self._worker)
        if self._stall is None or self._stall[1] != idlest:
            self._stall = (now, idlest)
            return False
        return now - self._stall[0] >= STALL_SECONDS

    async def _connect(self, conn: socket.socket, factory: Callable[[], Any]) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(factory, conn)
        except OSError:  # gone before its transport was made
            conn.close()
        finally:
            self._pending -= 1
            self._publish()
