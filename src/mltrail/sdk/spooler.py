"""The spooler: the one thread that writes a writer's unsendable batches to the spool.

The training thread must never hang on a disk, and nothing may print while holding a lock (console
capture would turn the output into a log line for the very writer holding the lock). So batches
bound for the spool are only queued here (:meth:`Spooler.put`: a deque append under a lock that
guards nothing but the queue), and this thread encodes and writes them, in queue order, with no
lock held while it does I/O or warns.

Memory stays bounded: past ``limit_points`` queued points, ``put`` waits for this thread to make
room (it releases the GIL, so a working disk keeps up; nothing is lost), but only while writes
progress: once one write has taken ``STUCK_SECONDS``, the oldest queued batches are dropped instead.
A failed write (full disk, read-only folder) drops its batch. Every drop is counted; the first
warns once, and :meth:`close` warns once more with the totals.
"""

from __future__ import annotations

import collections
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mltrail.sdk.spool import RunAddress, Spool, SpoolWarning

CLOSE_TIMEOUT_SECONDS = 30.0
STUCK_SECONDS = 2.0  # a spool write this long means the disk hangs: drop instead of waiting


@dataclass(frozen=True)
class Spoolable:
    """One batch waiting for the spool: how to encode it, and how many points or lines it holds."""

    encode: Callable[[Any], dict]
    batch: Any
    size: int
    kind: str  # "points" or "lines": what ``size`` counts
    stamp: int  # spool.order_stamp() when cut; spool files sort by it


class Spooler:
    """Writes queued batches of one experiment to the spool from a daemon thread.

    Args:
        spool: the spool directory.
        address / client_id: where the batches belong, and whose they are.
        limit_points: points the queue may hold; beyond, the oldest batches are dropped.
        on_error: called (from this thread) with the first write error, for strict mode.
    """

    def __init__(
        self,
        spool: Spool,
        address: RunAddress,
        client_id: str,
        *,
        limit_points: int,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.spool = spool
        self.address = address
        self.client_id = client_id
        self.limit_points = limit_points
        self.on_error = on_error
        self.dropped = {"points": 0, "lines": 0}  # what could not be kept, in total
        self.written_batches = 0
        self._queue: collections.deque[Spoolable] = collections.deque()
        self._queued_points = 0
        self._room = threading.Condition()  # guards the queue and counters only: no I/O, no output
        self._write_started: float | None = None  # monotonic start of the write in progress
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = threading.Event()
        self._warned = 0  # drops already announced
        self._first_error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"mltrail-spooler-{client_id}", daemon=True
        )
        self._thread.start()

    # --- any thread ----------------------------------------------------------------------------
    def put(self, item: Spoolable) -> None:
        """Queue a batch. Never does I/O and never prints (safe under the writer's lock); past
        the limit it waits for room while the spooler's writes progress, else drops the oldest."""
        with self._room:
            self._queue.append(item)
            self._idle.clear()
            self._wake.set()
            if item.kind == "points":
                self._queued_points += item.size
            while self._queued_points > self.limit_points and len(self._queue) > 1:
                if self._stuck() or not self._thread.is_alive():
                    self._drop(self._queue.popleft())
                else:
                    self._room.wait(0.05)

    def wait_idle(self, timeout: float) -> bool:
        """True once everything queued is written (or dropped)."""
        return self._idle.wait(timeout)

    @property
    def dropped_total(self) -> int:
        return self.dropped["points"] + self.dropped["lines"]

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Write what is queued (up to ``timeout``), stop the thread, report drops."""
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self.dropped_total > self._warned and self._warned:
            self._warn_totals()

    # --- the spooler thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            while self._write_next():
                pass
            if self.dropped_total and not self._warned:
                self._warn_first_drop()
            if self._stop.is_set():
                return

    def _stuck(self) -> bool:
        started = self._write_started
        return started is not None and time.monotonic() - started > STUCK_SECONDS

    def _write_next(self) -> bool:
        with self._room:
            if not self._queue:
                self._write_started = None
                self._idle.set()
                return False
            item = self._queue.popleft()
            if item.kind == "points":
                self._queued_points -= item.size
            self._write_started = time.monotonic()
            self._room.notify_all()
        try:
            record = item.encode(item.batch)
            self.spool.write(self.address, self.client_id, record, stamp=item.stamp)
            self.written_batches += 1
        except Exception as exc:  # full disk, read-only folder, a bug: drop, count, go on
            with self._room:
                self._drop(item)
            if self._first_error is None:
                self._first_error = exc
                if self.on_error is not None:
                    self.on_error(exc)
        return True

    def _drop(self, item: Spoolable) -> None:
        """Count a batch that could not be kept (with the lock held)."""
        self.dropped[item.kind] += item.size

    def _warn_first_drop(self) -> None:
        self._warned = self.dropped_total
        why = (
            f"the spool could not be written ({self._first_error})"
            if self._first_error
            else ("the spool could not keep up")
        )
        warnings.warn(
            f"mltrail: {why}: dropped the oldest unsent data ({self.dropped['points']} points, "
            f"{self.dropped['lines']} log lines so far) so training goes on; the experiment's "
            "writer counts every drop (exp.dropped_points)",
            SpoolWarning,
            stacklevel=1,
        )

    def _name(self) -> str:
        ref = self.address.ref
        return f"{ref[0]}/{ref[1]}" if ref else f"run {self.address.run} (offline)"

    def _warn_totals(self) -> None:
        warnings.warn(
            f"mltrail: in all {self.dropped['points']} points and {self.dropped['lines']} log "
            f"lines of experiment {self._name()} could not be sent or "
            "spooled and were dropped",
            SpoolWarning,
            stacklevel=1,
        )
        self._warned = self.dropped_total
