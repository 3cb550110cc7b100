"""The background writer: buffers what training code logs and sends it in columnar batches.

``exp.log`` only appends tuples to per-series lists under a lock; a daemon thread wakes every
``flush_interval`` seconds (or when ``batch_points`` points are waiting), turns the lists into
numpy columns and sends :class:`MetricBatch` / :class:`LogBatch` objects, each with this
writer's ``client_id`` and its own ``seq``, so a batch retried after a lost answer is stored
once. Transport faults are retried with backoff, then the batch goes to the spool; training
is never interrupted unless ``strict`` is set, in which case the fault is raised at the next
``log`` or at the end.
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

import numpy as np

from mltrail.core.errors import TransportError, ValidationError
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk
from mltrail.sdk.spool import (
    Spool,
    SpoolWarning,
    encode_link,
    encode_logs,
    encode_metrics,
    is_transient,
)

if TYPE_CHECKING:
    from mltrail.store.base import Store

FLUSH_INTERVAL_SECONDS = 1.0  # a kill -9 loses at most about this much
BATCH_POINTS = 50_000
BATCH_LINES = 5_000
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
CLOSE_TIMEOUT_SECONDS = 30.0

Row = tuple[int, int, float, float]  # iteration, epoch (-1 = none), value, time


class Writer:
    """Buffers points, log lines and weights links of one experiment and sends them.

    Args:
        store: where batches go.
        project_id / experiment_id: the experiment written to.
        spool: where batches the store cannot take are kept.
        target: the spool's name for this store (see :func:`spool.target_of`).
        strict: remember transport faults so the training thread can raise them.
        flush_interval: seconds between time-triggered flushes.
        batch_points: points that trigger a flush, and the most one batch carries.
        retry_delays: waits between attempts before a batch is spooled.
    """

    def __init__(
        self,
        store: Store,
        project_id: int,
        experiment_id: int,
        *,
        spool: Spool,
        target: str,
        strict: bool = False,
        flush_interval: float = FLUSH_INTERVAL_SECONDS,
        batch_points: int = BATCH_POINTS,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.store = store
        self.project_id = project_id
        self.experiment_id = experiment_id
        self.spool = spool
        self.target = target
        self.strict = strict
        self.flush_interval = flush_interval
        self.batch_points = batch_points
        self.retry_delays = tuple(retry_delays)
        self.client_id = uuid.uuid4().hex
        self.error: BaseException | None = None  # strict mode: raised by the training thread
        self.spooled_batches = 0
        self._seq = itertools.count(1)
        self._lock = threading.Lock()  # guards the buffers below
        self._send_lock = threading.Lock()  # one drain at a time, so batches stay in order
        self._series: dict[tuple[str, str], list[Row]] = {}
        self._points = 0
        self._lines: list[LogLine] = []
        self._links: list[tuple[str, int | None, int | None]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._spool_pending = False
        self._warned_offline = False
        self._thread: threading.Thread | None = None

    # --- what the training thread calls --------------------------------------------------------
    def add_points(self, phase: str, iteration: int, epoch: int, t: float, items: list) -> None:
        """Buffer already-validated ``(key, value)`` pairs of one step. The hot path."""
        with self._lock:
            series = self._series
            for key, value in items:
                rows = series.get((key, phase))
                if rows is None:
                    rows = series[(key, phase)] = []
                rows.append((iteration, epoch, value, t))
            self._points += len(items)
            if self._points >= self.batch_points:
                self._wake.set()

    def add_line(self, line: LogLine) -> None:
        with self._lock:
            self._lines.append(line)
            if len(self._lines) >= BATCH_LINES:
                self._wake.set()

    def add_link(self, weights_hash: str, iteration: int | None, epoch: int | None) -> None:
        with self._lock:
            self._links.append((weights_hash, iteration, epoch))

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Writer:
        """Start the daemon thread; also drained at interpreter exit."""
        self._thread = threading.Thread(
            target=self._run, name=f"mltrail-writer-{self.experiment_id}", daemon=True
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
                return
        self._drain()  # whatever arrived while the thread was finishing

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stop.is_set()
            try:
                self._drain()
            except Exception as exc:  # a bug here must not kill the thread silently
                self.error = exc
                warnings.warn(f"mltrail writer failed: {exc!r}", RuntimeWarning, stacklevel=1)
            if stopping:
                return

    # --- sending -----------------------------------------------------------------------------------
    def _drain(self) -> None:
        with self._send_lock:
            with self._lock:
                series, self._series, self._points = self._series, {}, 0
                lines, self._lines = self._lines, []
                links, self._links = self._links, []
            for batch in metric_batches(self.client_id, self._seq, series, self.batch_points):
                self._deliver(encode_metrics, batch, self.store.append_points)
            for start in range(0, len(lines), BATCH_LINES):
                log_batch = LogBatch(
                    self.client_id, next(self._seq), tuple(lines[start : start + BATCH_LINES])
                )
                self._deliver(encode_logs, log_batch, self.store.append_logs)
            for weights_hash, iteration, epoch in links:
                self._deliver_link(weights_hash, iteration, epoch)

    def _deliver_link(self, weights_hash: str, iteration: int | None, epoch: int | None) -> None:
        def call(p: int, e: int, _: Any) -> Any:
            return self.store.link_weights_hash(
                p, e, weights_hash, iteration=iteration, epoch=epoch
            )

        self._deliver(lambda _: encode_link(weights_hash, iteration, epoch), None, call)

    def _deliver(self, encode: Callable[[Any], dict], batch: Any, call: Callable[..., Any]) -> None:
        """Send with retries; spool when the store stays unreachable. Never raises."""
        if self._spool_pending and (self._past_deadline() or not self._replay_spooled()):
            self._to_spool(encode(batch), None)  # keep order: older batches are still waiting
            return
        fault: BaseException | None = None
        for delay in (0.0, *self.retry_delays):
            if delay and not self._may_wait(delay):
                break
            try:
                call(self.project_id, self.experiment_id, batch)
                return
            except Exception as exc:
                fault = exc
                if isinstance(exc, ValidationError):
                    self._reject(exc, encode(batch))
                    return
                if not is_transient(exc):
                    break
        self._to_spool(encode(batch), fault)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _may_wait(self, delay: float) -> bool:
        if self._deadline is not None and time.monotonic() + delay > self._deadline:
            return False
        time.sleep(delay)
        return True

    def _replay_spooled(self) -> bool:
        try:
            result = self.spool.replay(self.store, self.target, client_id=self.client_id)
        except Exception:
            return False
        self._spool_pending = result.remaining > 0
        return not self._spool_pending

    def _to_spool(self, record: dict, fault: BaseException | None) -> None:
        if self.strict and fault is not None and self.error is None:
            self.error = TransportError(f"store unreachable, batch spooled: {fault}")
        self.spool.write(self.target, self.project_id, self.experiment_id, self.client_id, record)
        self.spooled_batches += 1
        self._spool_pending = True
        if not self._warned_offline:
            self._warned_offline = True
            warnings.warn(
                f"mltrail: the store is unreachable ({fault}); unsent batches are kept in "
                f"{self.spool.directory} and uploaded by `mltrail sync` or the next run",
                SpoolWarning,
                stacklevel=1,
            )

    def _reject(self, exc: ValidationError, record: dict) -> None:
        if self.strict and self.error is None:
            self.error = exc
        warnings.warn(
            f"mltrail: the store refused a {record['kind']} batch: {exc}",
            RuntimeWarning,
            stacklevel=1,
        )


def metric_batches(
    client_id: str, seq: itertools.count, series: dict[tuple[str, str], list[Row]], limit: int
) -> list[MetricBatch]:
    """Turn buffered rows into columnar batches of at most ``limit`` points each."""
    batches: list[MetricBatch] = []
    chunks: list[SeriesChunk] = []
    size = 0
    for (key, phase), rows in series.items():
        for start in range(0, len(rows), limit):
            part = rows[start : start + limit]
            if size and size + len(part) > limit:
                batches.append(MetricBatch(client_id, next(seq), tuple(chunks)))
                chunks, size = [], 0
            chunks.append(series_chunk(key, phase, part))
            size += len(part)
    if chunks:
        batches.append(MetricBatch(client_id, next(seq), tuple(chunks)))
    return batches


def series_chunk(key: str, phase: str, rows: list[Row]) -> SeriesChunk:
    """Columns of one series from ``(iteration, epoch, value, time)`` rows."""
    iterations = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    epochs = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    values = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
    times = np.fromiter((r[3] for r in rows), dtype=np.float64, count=len(rows))
    return SeriesChunk(key, phase, iterations, epochs, values, times)
