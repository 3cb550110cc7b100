"""Ship a job's output into its experiment's logs: line by line, batched, in order, once.

Two reader threads (stdout, stderr) put lines on one queue; a shipper thread sends them with
``store.append_logs`` in batches, at least every ``flush_seconds``. Every batch carries a client
sequence number, so a batch retried after a transport fault is stored once.

The queue is bounded in bytes (:data:`MAX_QUEUED_BYTES`, batches by :data:`MAX_BATCH_BYTES`): a
job printing faster than its lines can be sent waits on its pipe (backpressure), so the agent's
memory stays bounded whatever the job prints, and no line is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from mltrail.core.errors import TransportError
from mltrail.core.types import LogBatch, LogLine

log = logging.getLogger("mltrail.agent")

MAX_LINE_BYTES = 65_536
MAX_BATCH_LINES = 5_000
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_QUEUED_BYTES = 8 * 1024 * 1024
_STOP = object()


class LogShipper:
    """Batches lines and sends them to the store from a daemon thread.

    Args:
        append: ``lambda batch: store.append_logs(project, experiment, batch)``.
        client_id: unique per job attempt, so sequence numbers never collide.
        flush_seconds: the longest a line waits before being sent.
        clock: injectable time source for the lines' timestamps.
    """

    def __init__(
        self,
        append: Callable[[LogBatch], Any],
        client_id: str,
        *,
        flush_seconds: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._append = append
        self._client_id = client_id
        self._flush_seconds = flush_seconds
        self._clock = clock
        self._queue: queue.Queue[Any] = queue.Queue()
        self._room = threading.Condition()
        self._queued_bytes = 0
        self._seq = 0
        self.lines_sent = 0
        self.lines_dropped = 0
        self._thread = threading.Thread(target=self._run, name="mltrail-log-shipper", daemon=True)
        self._thread.start()

    def put(self, stream: str, message: str, level: str = "INFO") -> None:
        """Queue one line (without its newline), waiting while the queue is full."""
        size = len(message) + 64
        with self._room:
            while self._queued_bytes + size > MAX_QUEUED_BYTES and self._queued_bytes:
                self._room.wait(1.0)
                if not self._thread.is_alive():
                    return
            self._queued_bytes += size
        self._queue.put(LogLine(time=self._clock(), stream=stream, level=level, message=message))

    def _taken(self, lines: list[LogLine]) -> None:
        """Give back the room of lines that left the queue."""
        with self._room:
            self._queued_bytes -= sum(len(line.message) + 64 for line in lines)
            self._room.notify_all()

    def close(self, timeout: float = 60.0) -> None:
        """Send everything queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        done = False
        while not done:
            batch, done = self._collect()
            if batch:
                self._send(batch)

    def _collect(self) -> tuple[list[LogLine], bool]:
        """Lines that arrived within one flush interval (or up to the batch limit)."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        size = len(first.message)
        deadline = time.monotonic() + self._flush_seconds
        while len(batch) < MAX_BATCH_LINES and size < MAX_BATCH_BYTES:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=max(remaining, 0))
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
            size += len(item.message)
        return batch, False

    def _send(self, lines: list[LogLine]) -> None:
        try:
            self._deliver(lines)
        finally:
            self._taken(lines)

    def _deliver(self, lines: list[LogLine]) -> None:
        self._seq += 1
        batch = LogBatch(client_id=self._client_id, seq=self._seq, lines=tuple(lines))
        delay = 0.2
        for attempt in range(30):
            try:
                self._append(batch)
                self.lines_sent += len(lines)
                return
            except TransportError as exc:
                log.warning("sending logs failed (attempt %d): %s; retrying", attempt + 1, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # a bad batch must not stop the job or the agent
                log.error("log batch of %d lines refused: %s", len(lines), exc)
                break
        self.lines_dropped += len(lines)


def pump_lines(pipe: IO[bytes], stream: str, shipper: LogShipper, level: str = "INFO") -> None:
    """Read a pipe to its end, handing each line to the shipper (long lines in pieces)."""
    try:
        for raw in iter(lambda: pipe.readline(MAX_LINE_BYTES), b""):
            text = raw.decode("utf-8", errors="replace")
            if text.endswith("\n"):
                text = text[:-1]
            shipper.put(stream, text.rstrip("\r"), level)
    finally:
        pipe.close()


def start_pump(
    pipe: IO[bytes], stream: str, shipper: LogShipper, level: str = "INFO"
) -> threading.Thread:
    """Start a daemon thread running :func:`pump_lines`."""
    thread = threading.Thread(
        target=pump_lines,
        args=(pipe, stream, shipper, level),
        name=f"mltrail-pump-{stream}",
        daemon=True,
    )
    thread.start()
    return thread
