"""The background writer: buffers what training code logs and sends it in columnar batches.

``exp.log`` only appends one record per call to a list, without a lock (see
:mod:`mltrail.sdk.buffer`); a daemon thread wakes every ``flush_interval`` seconds (or when
``batch_points`` points are waiting), turns the columns into numpy arrays and sends
:class:`MetricBatch` / :class:`LogBatch` objects, each with this writer's ``client_id`` and its
own ``seq``, so a batch retried after a lost answer is stored once. Transport faults are
retried with backoff, then the batch goes to the spool (:mod:`mltrail.sdk.delivery`); training
is never interrupted unless ``strict`` is set, in which case the fault is raised at the next
``log`` or at the end.

The thread sends each drain's batches on a thread of its own (:mod:`mltrail.sdk.sender`) and
cuts the next drain meanwhile, so the store does not wait for the cut; one drain's batches are
sent at a time, in order, and a flush or a close waits for them.

Memory stays bounded: once more than ``max_buffered_points`` points wait while the thread has
been stuck sending one batch for ``stall_seconds`` (or the store is known to be unreachable),
the training thread cuts them into batches and queues those for the spooler thread
(:mod:`mltrail.sdk.spooler`), which writes them to the spool or, when it cannot, drops the
oldest with a warning and a counter. While the store answers, only slower than training logs,
the training thread compacts the records into numpy columns instead, and spools only past
``hard_limit_points``; but several threads logging at once past :data:`CATCH_UP_BATCHES` wait
for the next take, briefly, while the store answers fast (:class:`~mltrail.sdk.priority.CatchUp`). While anything
of this writer is spooled, every batch goes through the spool, so batches are stored in the order
they were cut.

No deadlock through console capture, by construction: console capture and the SDK call
:meth:`Writer.add_line` from any thread, even from inside a ``print`` or a warning the writer
itself caused. ``add_line`` (like ``add_link``) takes no lock: it appends to a list, and drains
take records by copy-then-delete. ``add_points`` appends the same way; it only gives way (at
most :data:`~mltrail.sdk.priority.GIVE_WAY_SECONDS`) while a drain or another logging thread
cuts and packs records, CPU work (:mod:`mltrail.sdk.priority`), and a holder that logs does not
wait on itself. And the writer's lock is held only around list and numpy work and
:meth:`Spooler.put` (a deque append): never around I/O, a store call, a warning, logging or
printing. The training thread does no I/O at all.

Liveness: the writer's thread, and only it, heartbeats (see :mod:`mltrail.sdk.delivery`).
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from mltrail.core.types import LogLine, SeriesChunk
from mltrail.sdk.buffer import Call, metric_batches, points_of, series_chunks, take
from mltrail.sdk.delivery import RETRY_DELAYS, Delivery
from mltrail.sdk.outbox import BATCH_LINES, Item, build_outbox, full_batches, ready
from mltrail.sdk.priority import GIVE_WAY_SECONDS, CatchUp, WriterPriority, quick_switches
from mltrail.sdk.records import encode_metrics
from mltrail.sdk.sender import Sender
from mltrail.sdk.spool import RunAddress, Spool, SpoolWarning, order_stamp
from mltrail.sdk.spooler import Spoolable

if TYPE_CHECKING:
    from mltrail.store.base import Store

FLUSH_INTERVAL_SECONDS = 1.0  # a kill -9 loses at most about this much
BATCH_POINTS = 50_000
MAX_HELD_LINES = 200_000  # log lines held while the store stalls; newer ones are counted, dropped
CLOSE_TIMEOUT_SECONDS = 30.0
BUFFERED_BATCHES = 4  # points held in memory while the store stalls, in batches
HARD_LIMIT_BATCHES = 20  # points held whatever the store does (then spooled), in batches
STALL_SECONDS = 0.5  # a store call this long counts as a stall
CATCH_UP_BATCHES = 1.2  # buffered past this, threads logging at once wait for the next take
CATCH_UP_CALL_SECONDS = 0.1  # unless a store call has been this long: the store is slow


class Writer(Delivery):
    """Buffers points, log lines and weights links of one experiment and sends them.

    Args:
        store: where batches go.
        project_id / experiment_id: the experiment written to.
        spool: where batches the store cannot take are kept.
        target: the spool's name for this store (see :func:`spool.identity_target`).
        run: a run started offline: its client-generated id (``project_id`` and
            ``experiment_id`` are ``None`` until the store numbers it).
        number_run: for such a run, creates its experiment (idempotently) and returns
            ``(project_id, experiment_id, target)``; tried while the run waits for a number.
        strict: remember transport faults so the training thread can raise them.
        flush_interval: seconds between time-triggered flushes.
        batch_points: points that trigger a flush, and the most one batch carries.
        retry_delays: waits between attempts before a batch is spooled.
        max_buffered_points: points kept in memory while the store stalls; beyond, they are
            spooled (default ``BUFFERED_BATCHES * batch_points``).
        hard_limit_points: points held in memory even while the store answers (compacted);
            beyond, they are spooled (default ``HARD_LIMIT_BATCHES * batch_points``).
        stall_seconds: how long one store call must take to count as a stall.
    """

    def __init__(
        self,
        store: Store,
        project_id: int | None,
        experiment_id: int | None,
        *,
        spool: Spool,
        target: str,
        run: str | None = None,
        number_run: Callable[[], tuple[int, int, str]] | None = None,
        strict: bool = False,
        flush_interval: float = FLUSH_INTERVAL_SECONDS,
        batch_points: int = BATCH_POINTS,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        max_buffered_points: int | None = None,
        hard_limit_points: int | None = None,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.flush_interval = flush_interval
        self.batch_points = batch_points
        self.max_buffered_points = max_buffered_points or BUFFERED_BATCHES * batch_points
        self.hard_limit_points = max(
            hard_limit_points or HARD_LIMIT_BATCHES * batch_points, self.max_buffered_points
        )
        self.stall_seconds = stall_seconds
        ref = None if project_id is None or experiment_id is None else (project_id, experiment_id)
        super().__init__(
            store,
            RunAddress(target, ref, run),
            spool=spool,
            number_run=number_run,
            strict=strict,
            retry_delays=retry_delays,
            spool_limit_points=self.hard_limit_points,
        )
        self._seq = itertools.count(1)
        self._lock = threading.Lock()  # guards takes and the compacted buffer; appends go without
        self._send_lock = threading.Lock()  # one drain at a time, so batches stay in order
        self._sender = Sender(f"mltrail-sender-{self.client_id}")  # sends while the next is cut
        self._waiting: tuple[list[Item], int] | None = None  # cut, waiting for the sender
        # the outbox being sent, from which item on, and its stamp (see _spool_buffered)
        self._sending: tuple[list[Item], int, int] | None = None
        self._priority = WriterPriority()  # loggers wait while a drain cuts and packs
        self._calls: list[Call] = []  # appended without the lock: see _take_calls
        self._sampled = 0  # points ever added by add_chunks (under the lock)
        self._taken = 0  # points ever taken from _calls (written under the lock only)
        self._compacted: list[SeriesChunk] = []  # records turned into columns, not yet sent
        self._compacted_points = 0
        self._overflowed = False  # the training thread spooled points since the last drain
        self.overflow_batches = 0  # batches the training thread spooled past the cap
        self.compactions = 0  # times the training thread turned records into columns
        self._lines: list[LogLine] = []  # appended without the lock, like _calls
        self._links: list[tuple[str, int | None, int | None]] = []  # likewise
        self.dropped_lines = 0  # lines not held while the store stalled (MAX_HELD_LINES)
        self.catch_up_points = int(CATCH_UP_BATCHES * batch_points)
        self._catch_up = CatchUp()  # threads logging at once, past catch_up_points
        self._wake = threading.Event()
        self._idle = False  # the writer's thread sleeps, waiting for _wake (see add_record)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inherited = False  # a forked child's copy: the parent's thread sends the buffer
        _WRITERS.add(self)

    # --- what the training thread calls --------------------------------------------------------
    def add_points(
        self, phase: str, iteration: int, epoch: int, t: float, values: dict[str, float]
    ) -> None:
        """Buffer one step's already-validated values, read at once (the dict stays the
        caller's); :meth:`add_record` with the dict's keys and values."""
        self.add_record(phase, iteration, epoch, t, tuple(values), tuple(values.values()))

    def add_record(
        self,
        phase: str,
        iteration: int,
        epoch: int,
        t: float,
        keys: tuple[str, ...],
        values: tuple[float, ...],
    ) -> None:
        """Buffer one step's already-validated values, a value per key. The hot path.

        One tuple, the values in it, not a dict nor a tuple of their own: the garbage collector
        stops tracking the record at its first collection (see :mod:`mltrail.sdk.buffer`)."""
        if self._priority.held:
            self._priority.give_way()
        calls = self._calls
        # atomic, so no lock; a concatenation: a starred tuple is built through a list
        calls.append((phase, iteration, epoch, t, keys) + values)  # noqa: RUF005
        held = len(calls) * len(values)  # no counter, threads would lose updates; exact per keys
        if held >= self.batch_points:
            if not self._wake.is_set():  # set() takes a lock: logging threads would queue on it
                self._wake.set()
                if self._idle:  # asleep: it would queue for the GIL behind every logging thread
                    self._priority.summon(lambda: self._idle)
                    return  # its drain takes the records now (it may hold the priority already)
            caught_up = (  # never without a thread to take them (a forked child's), nor a slow store
                held >= self.catch_up_points and self._thread and not self._inherited
                and not self._stalled(CATCH_UP_CALL_SECONDS) and self._catch_up.wait()
            )  # fmt: skip
            if caught_up:
                return
            if held >= self.max_buffered_points:
                self._relieve(held)

    def _relieve(self, held: int) -> None:
        """Past the memory cap: spool when the store stalls (or everything held passes the
        hard limit); otherwise compact the records into numpy columns (a third of the size),
        the other logging threads giving way meanwhile (see :mod:`mltrail.sdk.priority`).

        Runs on the training thread: list and numpy work only, the spooler does the I/O. Another
        thread relieving (or a drain taking the records) makes this call's work unneeded, until
        twice the cap is held: then this thread waits for it (an overflow waits for the spool's
        disk), so memory stays bounded."""
        if not self._lock.acquire(blocking=held >= 2 * self.max_buffered_points):
            return
        try:
            if points_of(self._calls) < self.max_buffered_points:  # the estimate ran ahead
                return
            if self._stalled() or self._compacted_points >= self.hard_limit_points:
                self._overflow()
                return
            # priority only once the lock is ours: an overflow holds it while the spool's
            # disk catches up, and loggers must not give way to a thread waiting for that
            with self._priority.hold(GIVE_WAY_SECONDS):
                chunks = series_chunks(self._take_calls())
            self._compacted.extend(chunks)
            self._compacted_points += sum(len(c) for c in chunks)
            self.compactions += 1
        finally:
            self._lock.release()

    @property
    def buffered_points(self) -> int:
        """Points logged and not yet taken by a drain or an overflow."""
        return points_of(self._calls) + self._compacted_points

    def _take_all(self) -> tuple[list[SeriesChunk], list[Call]]:
        """Compacted chunks and records, oldest first (with the lock held)."""
        compacted, self._compacted, self._compacted_points = self._compacted, [], 0
        return compacted, self._take_calls()

    def _take_calls(self) -> list[Call]:
        """Take every buffered call (with the lock held)."""
        taken = take(self._calls)
        self._taken += points_of(taken)
        self._catch_up.taken()
        return taken

    def _stalled(self, seconds: float | None = None) -> bool:
        """Whether a store call has been running ``seconds`` (``stall_seconds`` if None)."""
        if self._spool_pending:
            return True
        since = self._busy_since
        return since is not None and time.monotonic() - since >= (seconds or self.stall_seconds)

    def _overflow(self) -> None:
        """Queue the buffered points for the spool (with the buffer lock held: no I/O here)."""
        compacted, calls = self._take_all()
        stamp = order_stamp()
        chunks = compacted + series_chunks(calls)
        del calls, compacted
        for batch in metric_batches(self.client_id, self._seq, chunks, self.batch_points):
            self._spooler.put(Spoolable(encode_metrics, batch, batch.point_count, "points", stamp))
            self.overflow_batches += 1
        self._overflowed = True

    def add_chunks(self, chunks: Sequence[SeriesChunk]) -> None:
        """Buffer columns from a thread other than the training one (the system-metrics
        sampler): under the lock, beside the compacted records, so the training thread's
        lock-free counters stay its own."""
        points = sum(len(c) for c in chunks)
        with self._lock:
            self._compacted.extend(chunks)
            self._compacted_points += points
            self._sampled += points

    def add_line(self, line: LogLine) -> None:
        """Buffer one log line. Takes no lock and never blocks: callable from anywhere."""
        lines = self._lines
        if len(lines) >= MAX_HELD_LINES:
            self.dropped_lines += 1  # only while the store stalls; counted, reported at close
            return
        lines.append(line)
        if len(lines) >= BATCH_LINES:
            self._wake.set()

    def add_link(self, weights_hash: str, iteration: int | None, epoch: int | None) -> None:
        self._links.append((weights_hash, iteration, epoch))

    @property
    def logged_points(self) -> int:
        """Points ever buffered (training's and the system sampler's): each is stored,
        spooled or counted in :attr:`dropped_points`."""
        return self._taken + points_of(self._calls) + self._sampled

    @property
    def dropped_points(self) -> int:
        """Points that could be neither sent nor spooled (full or unwritable spool)."""
        return self._spooler.dropped["points"]

    def wait_for_spooler(self, timeout: float) -> bool:
        """True once every batch queued for the spool is written (or dropped)."""
        return self._spooler.wait_idle(timeout)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Writer:
        """Start the daemon thread; also drained at interpreter exit."""
        self._thread = threading.Thread(
            target=self._run, name=f"mltrail-writer-{self.client_id}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)
        return self

    def flush(self) -> None:
        """Send everything buffered now, from the calling thread."""
        self._drain()

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Stop the thread after a last drain; retries give up (and spool) by ``timeout``."""
        atexit.unregister(self.close)
        if self._inherited:
            self._stop.set()
            return
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():  # stuck in a store call: it still owns its batch
                self._spool_buffered()
                self._spooler.close(max(self._deadline - time.monotonic(), 1.0))
                return
        self._drain()  # whatever arrived while the thread was finishing
        self._spooler.close(max(self._deadline - time.monotonic(), 1.0))
        self._report_dropped_lines()

    def _spool_buffered(self) -> None:
        """Spool what a drain stuck in a store call has not delivered: the batch in that call
        and the ones after it in its outbox, then the points buffered beside it (those held
        back for the next drain, and any logged since its cut), each in its order. Left to
        the stuck thread, they were lost when the script exited (its threads are daemons) if
        the call outlasted the close; a batch the call still stores is stored once (its seq)."""
        sending, self._sending = self._sending, None
        if sending is not None:
            outbox, index, stamp = sending
            self._spool_items(outbox[index:], stamp)
        with self._lock:
            waiting, self._waiting = self._waiting, None
            if self.buffered_points:
                self._overflow()
        if waiting is not None:  # cut ahead while the sender still sent: behind its batches
            outbox, stamp = waiting
            self._spool_items(outbox, stamp)

    def _spool_items(self, items: list[Item], stamp: int) -> None:
        """Queue cut batches for the spool, in their order (each waited for if still packing)."""
        for encode, batch, _ in items:
            self._to_spool(encode, ready(batch), None, stamp)

    def _report_dropped_lines(self) -> None:
        if self.dropped_lines:
            warnings.warn(
                f"mltrail: {self.dropped_lines} log lines were not kept: more than "
                f"{MAX_HELD_LINES} waited while the store stalled",
                SpoolWarning,
                stacklevel=1,
            )

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        self._heartbeat()
        while True:
            self._idle = True
            woken = self._wake.wait(min(self.flush_interval, self._until_heartbeat()))
            self._idle = False
            self._priority.arrive()
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                with quick_switches():  # its waits for the GIL behind logging threads: short
                    self._drain(hold_partial=woken and not stopping, hand_over=not stopping)
            except Exception as exc:  # a bug here must not kill the thread silently
                self._failed(exc)
            if stopping:
                return
            if self._until_heartbeat() <= 0:
                self._sender.wait()  # one store call at a time (and one stall clock)
                self._heartbeat()

    def _failed(self, exc: Exception) -> None:
        self.error = exc
        warnings.warn(f"mltrail writer failed: {exc!r}", RuntimeWarning, stacklevel=1)

    # --- sending -----------------------------------------------------------------------------------
    def _cut(self, hold_partial: bool = False) -> tuple[list[Item], int, bool]:
        """Take everything buffered and cut it into the drain's outbox, its order stamp, and
        whether it must go behind the spool (points were spooled before it was cut: the
        drain sets ``_spool_pending`` once the sender is idle, so a replay finishing meanwhile
        cannot clear it). With ``hold_partial``, a last metric batch that would not be full
        stays buffered for the next drain (see :func:`~mltrail.sdk.outbox.full_batches`)."""
        with self._lock:
            compacted, calls = self._take_all()
            lines = take(self._lines)
            links = take(self._links)
            behind_spool, self._overflowed = self._overflowed, False
            stamp = order_stamp()  # under the lock: an overflow cut later sorts after
        # priority only once the lock is ours: an overflow holds it while the spool's disk
        # catches up, and loggers must not give way to a drain waiting for that
        with self._priority.hold() as held:
            chunks = compacted + series_chunks(calls)
            del calls, compacted
            if hold_partial and not behind_spool:
                chunks = self._hold_partial(chunks)
            outbox = build_outbox(self.store, self.client_id, self._seq, chunks, lines, links,
                                  self.batch_points, self._priority if held else None)  # fmt: skip
        return outbox, stamp, behind_spool

    def _hold_partial(self, chunks: list[SeriesChunk]) -> list[SeriesChunk]:
        """The chunks of whole batches, to send now; the rest goes back in front of the
        compacted buffer, unless the lock is busy or something was spooled since the cut
        (then it is sent too: held points must not follow newer ones to the store)."""
        sent, held = full_batches(chunks, self.batch_points)
        if not held or not self._lock.acquire(blocking=False):
            return chunks
        try:
            if self._overflowed or self._spool_pending:
                return chunks
            self._compacted[:0] = held
            self._compacted_points += sum(map(len, held))
            return sent
        finally:
            self._lock.release()

    def _drain(self, hold_partial: bool = False, hand_over: bool = False) -> None:
        """Send everything buffered, from the calling thread, once the outbox handed over
        before is sent (see :meth:`_cut` for ``hold_partial``). With ``hand_over`` (the
        writer's thread), the sending goes to the :class:`~mltrail.sdk.sender.Sender` and
        this returns once it started: the next cut overlaps it."""
        if self._inherited:
            return
        with self._send_lock:
            if not hand_over or self._stalled():  # cut nothing ahead of a stalled store: the
                self._sender.wait()  # points wait in the buffer, where the cap (or close) sees them
            outbox, stamp, behind_spool = self._cut(hold_partial)
            if self._sender.busy:
                self._waiting = (outbox, stamp)  # a close that gives up on the sender spools it
                self._sender.wait()
                with self._lock:
                    mine, self._waiting = self._waiting is not None, None
                if not mine:
                    return
            if behind_spool:  # newer batches must not overtake the spooled ones
                self._spool_pending = True
            if not outbox and not self._spool_pending:
                return
            if not (hand_over and self._hand_over(outbox, stamp)):
                self._send(outbox, stamp)

    def _hand_over(self, outbox: list[Item], stamp: int) -> bool:
        """:meth:`Sender.hand_over` of the outbox's sending, with the priority held: starting a
        thread is two waits for the GIL (the new thread's first, then this one's once it has
        started), each behind every logging thread otherwise (CPU work: the hold ends before
        the new thread's store call can wait on anything)."""
        with self._priority.hold():
            return self._sender.hand_over(lambda: self._send_handed(outbox, stamp))

    def _send_handed(self, outbox: list[Item], stamp: int) -> None:
        """:meth:`_send` on the sender's thread."""
        try:
            with quick_switches():  # its waits for the GIL behind logging threads: short
                self._send(outbox, stamp)
        except Exception as exc:  # a bug here must not end the thread silently
            self._failed(exc)

    def _send(self, outbox: list[Item], stamp: int) -> None:
        """Deliver one cut outbox in order, then replay the spool if anything is in it (the
        send lock held, or on the sender's thread while a drain waits for it)."""
        for index, (encode, batch, call) in enumerate(outbox):
            if self._spool_pending:  # keep order: all that is left goes behind the spool
                self._spool_items(outbox[index:], stamp)
                break
            self._sending = (outbox, index, stamp)  # a close giving up on this call spools it
            # a batch still being packed is waited for here, not in its store call: the
            # wait is the writer's CPU work, never a stalled store
            self._deliver(encode, ready(batch), call, stamp)
        self._sending = None
        if self._spool_pending and not self._past_deadline():
            # in file order: cut time, so the order things were logged
            self._replay_spooled(final=self._stop.is_set())


_WRITERS: weakref.WeakSet[Writer] = weakref.WeakSet()


def _detach_in_child() -> None:
    """A forked child's copies of the writers are never drained (their buffers are the
    parent's to send, under the same client id and batch numbers: a store would take the
    parent's next batch for a retry of the child's and keep only one), and their locks, which
    the parent's writer thread may have held mid-drain at the fork, are new: closing one (at
    the child's exit, through atexit) returned never."""
    for writer in list(_WRITERS):
        writer._inherited = True
        writer._idle = False  # no thread of its own to summon
        writer._lock, writer._send_lock = threading.Lock(), threading.Lock()
        writer._sender = Sender(writer._sender.name)  # the parent's thread is not the child's
        atexit.unregister(writer.close)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_detach_in_child)
