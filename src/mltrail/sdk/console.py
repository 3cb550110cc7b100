"""Console capture: stdout, stderr and ``logging`` records become the experiment's log lines.

Everything still reaches the local console unchanged: ``sys.stdout`` / ``sys.stderr`` are
replaced by tees that write through to the originals and cut what passes into lines, and a
handler on the root logger records each log record with its logger name and level. Both are
undone when the experiment ends.

A ``logging.StreamHandler`` created *after* the capture started writes into the tee, so its
records are recorded twice (as a logger line and as a stderr line); configure logging before
``mltrail.start`` to avoid that.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from mltrail.core.types import LogLine

STDOUT_LEVEL = "INFO"
STDERR_LEVEL = "WARNING"
MAX_PENDING_CHARS = 65_536  # a progress bar without newlines must not grow without bound

Sink = Callable[[LogLine], None]


class StreamTee:
    """A text stream that writes through to ``original`` and sends complete lines to ``sink``.

    ``\\r`` overwrites the line, as on a terminal: only the text after the last one is kept.
    """

    def __init__(
        self, original: TextIO, stream: str, level: str, sink: Sink, clock: Callable[[], float]
    ) -> None:
        self._original = original
        self._stream = stream
        self._level = level
        self._sink = sink
        self._clock = clock
        self._pending = ""
        self._lock = threading.Lock()

    @property
    def original(self) -> TextIO:
        return self._original

    def write(self, text: str) -> int:
        written = self._original.write(text)
        if not isinstance(text, str) or not text:
            return written
        with self._lock:
            self._pending += text
            if "\n" not in self._pending:
                if len(self._pending) > MAX_PENDING_CHARS:
                    self._pending = self._pending.rsplit("\r", 1)[-1][-MAX_PENDING_CHARS:]
                return written
            *lines, self._pending = self._pending.split("\n")
        now = self._clock()
        for line in lines:
            self._emit(line, now)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def close_capture(self) -> None:
        """Send the unfinished last line, if any."""
        with self._lock:
            pending, self._pending = self._pending, ""
        if pending:
            self._emit(pending, self._clock())

    def _emit(self, line: str, now: float) -> None:
        text = line.rstrip("\r").rsplit("\r", 1)[-1]
        self._sink(LogLine(now, self._stream, self._level, text))

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer ...
        return getattr(self._original, name)


class CaptureHandler(logging.Handler):
    """Records every log record reaching the root logger (mltrail's own records excepted)."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(logging.NOTSET)
        self._sink = sink
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "mltrail" or record.name.startswith("mltrail."):
            return  # the SDK's own warnings would otherwise feed back into the logs
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        level = record.levelname if record.levelname in logging._nameToLevel else "INFO"
        self._sink(LogLine(record.created, record.name, level, message))


class ConsoleCapture:
    """Tees stdout/stderr and hooks the root logger until :meth:`stop`.

    Args:
        sink: receives each captured line (the writer's ``add_line``).
        clock: time source for stream lines.
    """

    def __init__(self, sink: Sink, clock: Callable[[], float] = time.time) -> None:
        self._sink = sink
        self._clock = clock
        self._stdout: StreamTee | None = None
        self._stderr: StreamTee | None = None
        self._handler: CaptureHandler | None = None

    def start(self) -> ConsoleCapture:
        self._stdout = StreamTee(sys.stdout, "stdout", STDOUT_LEVEL, self._sink, self._clock)
        self._stderr = StreamTee(sys.stderr, "stderr", STDERR_LEVEL, self._sink, self._clock)
        sys.stdout = self._stdout  # type: ignore[assignment]
        sys.stderr = self._stderr  # type: ignore[assignment]
        self._handler = CaptureHandler(self._sink)
        logging.getLogger().addHandler(self._handler)
        return self

    def stop(self) -> None:
        """Send unfinished lines and put the original streams and handlers back."""
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        for name, tee in (("stdout", self._stdout), ("stderr", self._stderr)):
            if tee is None:
                continue
            tee.close_capture()
            if getattr(sys, name) is tee:  # someone else may have replaced it since
                setattr(sys, name, tee.original)
        self._stdout = self._stderr = None
