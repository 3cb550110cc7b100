"""Console capture at the Python level, the fallback: ``sys.stdout``/``sys.stderr`` become tees.

Used where file descriptors cannot be captured (Windows, pytest's capture, Jupyter) or when
``MLTRAIL_CAPTURE=python``. Only what goes through ``sys.stdout``/``sys.stderr`` as text is
captured: not ``sys.stdout.buffer``, ``os.write``, C extensions or child processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TextIO

from mltrail.core.types import LogLine
from mltrail.sdk.console.lines import LineCutter

Deliver = Callable[[list[LogLine]], None]


class StreamTee:
    """A text stream that writes through to ``original`` and cuts what passes into lines.

    The write goes to the original first, with no lock of ours held; the cutting happens under
    a re-entrant lock (a signal handler that prints while the main thread cuts must not wait
    for itself) that guards string work only; the lines are delivered after it is released.
    """

    def __init__(self, original: TextIO, cutter: LineCutter, deliver: Deliver) -> None:
        self._original = original
        self._cutter = cutter
        self._deliver = deliver
        self._lock = threading.RLock()

    @property
    def original(self) -> TextIO:
        return self._original

    def write(self, text: str) -> int:
        written = self._original.write(text)
        if isinstance(text, str) and text:
            with self._lock:
                lines = self._cutter.feed(text)
            if lines:
                self._deliver(lines)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def close_capture(self) -> None:
        """Send the unfinished last line, if any."""
        with self._lock:
            lines = self._cutter.finish()
        self._deliver(lines)

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer ...
        return getattr(self._original, name)
