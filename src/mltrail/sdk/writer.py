"""The background writer: buffers what training code logs and sends it in columnar batches.

``exp.log`` only appends one record per call to a list, without a lock (see
:mod:`mltrail.sdk.buffer`); a daemon thread wakes every ``flush_interval`` seconds (or when
``batch_points`` points are waiting), turns the columns into numpy arrays and sends
:class:`MetricBatch` / :class:`LogBatch` objects, each with this writer's ``client_id`` and its
own ``seq``, so a batch retried after a lost answer is stored once. Transport faults are
retried with backoff, then the batch goes to the spool; training is never interrupted unless
``strict`` is set, in which case the fault is raised at the next ``log`` or at the end.

Memory stays bounded: once more than ``max_buffered_points`` points wait while the thread has
been stuck sending one batch for ``stall_seconds`` (or the store is known to be unreachable),
the training thread cuts them into batches and queues those for the spooler thread
(:mod:`mltrail.sdk.spooler`), which writes them to the spool or, when it cannot, drops the
oldest with a warning and a counter. While the store answers, only slower than training logs,
the training thread compacts the records into numpy columns instead, and spools only past
``hard_limit_points``. While anything of this writer is spooled, every batch goes through the
spool, so batches are stored in the order they were cut.

No deadlock through console capture, by construction: console capture and the SDK call
:meth:`Writer.add_line` from any thread, even from inside a ``print`` or a warning the writer
itself caused. ``add_line`` (like ``add_points`` and ``add_link``) takes no lock: it appends to
a list, and drains take records by copy-then-delete. And the writer's lock is held only around
list and numpy work and :meth:`Spooler.put` (a deque append): never around I/O, a store call, a
warning, logging or printing. The training thread does no I/O at all.

Liveness: the writer's thread, and only it, heartbeats (``store.record_heartbeat``) at its
first wake and then every :func:`~mltrail.core.liveness.heartbeat_interval` seconds of the
store's ``crash_after``, right after a drain and with no lock held; a failed heartbeat is
silent (the batches' own path warns about faults). So a run reads ``crashed`` once its process
dies, hangs outside Python or loses the store, however idle its training loop is.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mltrail.core.errors import MltrailError, TransportError
from mltrail.core.liveness import HEARTBEAT_SECONDS, heartbeat_interval
from mltrail.core.types import LogLine, SeriesChunk
from mltrail.sdk.buffer import Call, metric_batches, points_of, series_chunks, size_of, take
from mltrail.sdk.outbox import BATCH_LINES, build_outbox
from mltrail.sdk.records import encode_metrics
from mltrail.sdk.spool import RunAddress, Spool, SpoolWarning, is_transient, order_stamp
from mltrail.sdk.spooler import Spoolable, Spooler
from mltrail.sdk.sync import Destination, is_refusal, replay

if TYPE_CHECKING:
    from mltrail.store.base import Store

FLUSH_INTERVAL_SECONDS = 1.0  # a kill -9 loses at most about this much
BATCH_POINTS = 50_000
MAX_HELD_LINES = 200_000  # log lines held while the store stalls; newer ones are counted, dropped
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
CLOSE_TIMEOUT_SECONDS = 30.0
BUFFERED_BATCHES = 4  # points held in memory while the store stalls, in batches
HARD_LIMIT_BATCHES = 20  # points held whatever the store does (then spooled), in batches
STALL_SECONDS = 0.5  # a store call this long counts as a stall
NUMBER_RETRY_SECONDS = 2.0  # a run started offline asks the store for its number this often
SPOOLER_IDLE_WAIT = 5.0  # how long a replay waits for queued batches to reach the spool


class Writer:
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
        self.store = store
        ref = None if project_id is None or experiment_id is None else (project_id, experiment_id)
        self.address = RunAddress(target, ref, run)
        self._first_target = target  # what the files spooled before numbering name
        self._number_run = number_run
        self._next_number_try = 0.0  # monotonic
        self.spool = spool
        self.strict = strict
        self.flush_interval = flush_interval
        self.batch_points = batch_points
        self.retry_delays = tuple(retry_delays)
        self.max_buffered_points = max_buffered_points or BUFFERED_BATCHES * batch_points
        self.hard_limit_points = max(
            hard_limit_points or HARD_LIMIT_BATCHES * batch_points, self.max_buffered_points
        )
        self.stall_seconds = stall_seconds
        self.client_id = uuid.uuid4().hex
        self.error: BaseException | None = None  # strict mode: raised by the training thread
        self.spooled_batches = 0
        self.rejected_batches = 0  # refused by the store (4xx), kept in spool/rejected
        self._seq = itertools.count(1)
        self._lock = threading.Lock()  # guards takes and the compacted buffer; appends go without
        self._send_lock = threading.Lock()  # one drain at a time, so batches stay in order
        self._calls: list[Call] = []  # appended without the lock: see _take_calls
        self._sampled = 0  # points ever added by add_chunks (under the lock)
        self._taken = 0  # points ever taken from _calls (written under the lock only)
        self._compacted: list[SeriesChunk] = []  # records turned into columns, not yet sent
        self._compacted_points = 0
        self._busy_since: float | None = None  # monotonic start of the store call in progress
        self._overflowed = False  # the training thread spooled points since the last drain
        self.overflow_batches = 0  # batches the training thread spooled past the cap
        self.compactions = 0  # times the training thread turned records into columns
        self._lines: list[LogLine] = []  # appended without the lock, like _calls
        self._links: list[tuple[str, int | None, int | None]] = []  # likewise
        self.dropped_lines = 0  # lines not held while the store stalled (MAX_HELD_LINES)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._spool_pending = self.address.ref is None  # offline: all to the spool until numbered
        self._unreachable = False  # the last delivery failed: try the next once, no retries
        self._warned_offline = False
        self._heartbeat_every = HEARTBEAT_SECONDS  # until the store says its crash_after
        self._next_heartbeat = 0.0  # monotonic; the first wake heartbeats
        self._thread: threading.Thread | None = None
        self._spooler = Spooler(
            spool,
            self.address,
            self.client_id,
            limit_points=self.hard_limit_points,
            on_error=self._remember_spool_error,
        )

    @property
    def project_id(self) -> int:
        return self._ref()[0]

    @property
    def experiment_id(self) -> int:
        return self._ref()[1]

    @property
    def target(self) -> str:
        return self.address.target

    def _ref(self) -> tuple[int, int]:
        ref = self.address.ref
        assert ref is not None, "the run has no number yet"
        return ref

    # --- what the training thread calls --------------------------------------------------------
    def add_points(
        self, phase: str, iteration: int, epoch: int, t: float, values: dict[str, float]
    ) -> None:
        """Buffer one step's already-validated values. The hot path.

        ``values`` becomes the writer's: pass a dict nobody changes afterwards (a copy).
        """
        calls = self._calls
        calls.append((phase, iteration, epoch, t, values))  # atomic, so no lock
        held = len(calls) * len(values)  # no counter, threads would lose updates; exact per keys
        if held >= self.batch_points:
            if not self._wake.is_set():  # set() takes a lock: logging threads would queue on it
                self._wake.set()
            if held >= self.max_buffered_points:
                self._relieve(held)

    def _relieve(self, held: int) -> None:
        """Past the memory cap: spool when the store stalls (or everything held passes the
        hard limit); otherwise compact the records into numpy columns (a third of the size).

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
        return taken

    def _stalled(self) -> bool:
        if self._spool_pending:
            return True
        since = self._busy_since
        return since is not None and time.monotonic() - since >= self.stall_seconds

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

    def _remember_spool_error(self, exc: BaseException) -> None:
        if self.strict and self.error is None:
            self.error = exc

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
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():  # stuck in a store call: it still owns its batch
                self._spooler.close(max(self._deadline - time.monotonic(), 1.0))
                return
        self._drain()  # whatever arrived while the thread was finishing
        self._spooler.close(max(self._deadline - time.monotonic(), 1.0))
        self._report_dropped_lines()

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
            self._wake.wait(min(self.flush_interval, self._until_heartbeat()))
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                self._drain()
            except Exception as exc:  # a bug here must not kill the thread silently
                self.error = exc
                warnings.warn(f"mltrail writer failed: {exc!r}", RuntimeWarning, stacklevel=1)
            if stopping:
                return
            if self._until_heartbeat() <= 0:
                self._heartbeat()

    # --- liveness (the writer's thread only, no lock held) --------------------------------------
    def _until_heartbeat(self) -> float:
        return max(self._next_heartbeat - time.monotonic(), 0.0)

    def _heartbeat(self) -> None:
        """Tell the store this run is alive; beat as often as its ``crash_after`` asks."""
        ref = self.address.ref
        if ref is None:  # started offline, no number yet: nothing to beat for
            self._next_heartbeat = time.monotonic() + self._heartbeat_every
            return
        self._busy_since = time.monotonic()  # a heartbeat that hangs is a stall too
        try:
            liveness = self.store.record_heartbeat(*ref)
            self._heartbeat_every = heartbeat_interval(liveness.crash_after)
        except Exception:  # unreachable or refused: the batches' path says so, and retries
            pass
        finally:
            self._busy_since = None
        self._next_heartbeat = time.monotonic() + self._heartbeat_every

    # --- sending -----------------------------------------------------------------------------------
    def _drain(self) -> None:
        with self._send_lock:
            with self._lock:
                compacted, calls = self._take_all()
                lines = take(self._lines)
                links = take(self._links)
                if self._overflowed:  # newer batches must not overtake the spooled ones
                    self._overflowed, self._spool_pending = False, True
                stamp = order_stamp()  # under the lock: an overflow cut later sorts after
            chunks = compacted + series_chunks(calls)
            outbox = build_outbox(
                self.store, self.client_id, self._seq, chunks, lines, links, self.batch_points
            )
            del calls, compacted, chunks
            for index, (encode, batch, call) in enumerate(outbox):
                if self._spool_pending:  # keep order: all that is left goes behind the spool
                    for left_encode, left_batch, _ in outbox[index:]:
                        self._to_spool(left_encode, left_batch, None, stamp)
                    break
                self._deliver(encode, batch, call, stamp)
            if self._spool_pending and not self._past_deadline():
                self._replay_spooled()  # in file order: cut time, so the order things were logged

    def _deliver(
        self, encode: Callable[[Any], dict], batch: Any, call: Callable[..., Any], stamp: int
    ) -> None:
        """Send with retries; spool when the store stays unreachable. Never raises.

        ``stamp`` (:func:`~mltrail.sdk.spool.order_stamp`) is when the batch was cut from the
        buffer; spooled, it sorts by it.
        """
        fault: BaseException | None = None
        self._busy_since = time.monotonic()  # retries included: a stall is a stall
        delays = (0.0,) if self._unreachable else (0.0, *self.retry_delays)
        try:
            for delay in delays:
                if delay and not self._may_wait(delay):
                    break
                try:
                    call(self.project_id, self.experiment_id, batch)
                    self._unreachable = False
                    return
                except Exception as exc:
                    fault = exc
                    if isinstance(exc, MltrailError) and is_refusal(exc):  # a poison batch:
                        self._reject(exc, encode(batch))  # never retried, never blocks the rest
                        return
                    if not is_transient(exc):
                        break
        finally:
            self._busy_since = None
        self._to_spool(encode, batch, fault, stamp)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _may_wait(self, delay: float) -> bool:
        if self._deadline is not None and time.monotonic() + delay > self._deadline:
            return False
        time.sleep(delay)
        return True

    def _replay_spooled(self) -> bool:
        if self.address.ref is None and not self._try_number(final=self._stop.is_set()):
            return False
        if not self._spooler.wait_idle(SPOOLER_IDLE_WAIT):  # older batches still on their way
            return False
        ref, run = self.address.ref, self.address.run
        runs = {run: ref} if run is not None and ref is not None else {}
        here = Destination(self.address.target, self._first_target)
        self._busy_since = time.monotonic()
        try:
            result = replay(self.spool, self.store, here, client_id=self.client_id, runs=runs)
        except Exception:
            return False
        finally:
            self._busy_since = None
        self._spool_pending = result.remaining > 0
        return not self._spool_pending

    def _try_number(self, *, final: bool = False) -> bool:
        """Ask the store to number a run started offline (at most every few seconds, and once
        more at the end); from then on its batches go to the store, the spooled ones first."""
        now = time.monotonic()
        if self._number_run is None or (now < self._next_number_try and not final):
            return False
        self._next_number_try = now + NUMBER_RETRY_SECONDS
        self._busy_since = now
        try:
            p, e, target = self._number_run()
        except Exception:  # unreachable still (or refused: the spool keeps it for `sync`)
            return False
        finally:
            self._busy_since = None
        self.address.target = target  # before the ref: a reader seeing the ref sees it
        self.address.ref = (p, e)
        self._next_heartbeat = 0.0  # beat at the next wake
        return True

    def _to_spool(
        self, encode: Callable[[Any], dict], batch: Any, fault: BaseException | None, stamp: int
    ) -> None:
        """Queue a batch for the spooler (writer thread, no lock held), warn once if offline."""
        if self.strict and fault is not None and self.error is None:
            self.error = TransportError(f"store unreachable, batch spooled: {fault}")
        size, kind = size_of(batch)
        self._spooler.put(Spoolable(encode, batch, size, kind, stamp))
        self.spooled_batches += 1
        if fault is not None:  # the next batch tries once, not with the retries
            self._unreachable = True
        self._spool_pending = True
        if not self._warned_offline:
            self._warned_offline = True
            why = f"unreachable ({fault})" if fault is not None else "stalled"
            warnings.warn(
                f"mltrail: the store is {why}; unsent batches are kept in "
                f"{self.spool.directory} and uploaded by `mltrail sync` or the next run",
                SpoolWarning,
                stacklevel=1,
            )

    def _reject(self, exc: MltrailError, record: dict) -> None:
        """Keep a batch the store refused in ``spool/rejected/`` with its answer; warn naming it
        (writer thread, no lock held)."""
        if self.strict and self.error is None:
            self.error = exc
        where = self.spool.keep_refused(self.address, self.client_id, record, exc)
        self.rejected_batches += 1
        warnings.warn(
            f"mltrail: the store refused a {record['kind']} batch ({exc}); it was not stored "
            f"and later batches go on. Kept in {where}",
            SpoolWarning,
            stacklevel=1,
        )
