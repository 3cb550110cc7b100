"""Console capture: stdout, stderr and ``logging`` records become the experiment's log lines.

Everything still reaches the local console unchanged. Two levels:

- **fd** (the default where it works, :mod:`.fds`): fd 1 and 2 go through a small relay
  process that prints every byte unchanged and copies it back here, so ``os.write``, C
  extensions, ``os.system`` and ``subprocess`` children are captured too.
- **python** (the fallback, :mod:`.streams`): ``sys.stdout``/``sys.stderr`` become tees; used on
  Windows, under pytest's capture, in Jupyter, or with ``MLTRAIL_CAPTURE=python``.

Either way, stdout and stderr lines are stored with level INFO (a stderr line is not a warning);
``\\r`` progress bars are stored as their successive states, at most one per second per stream
plus the last (:mod:`.lines`); ``logging`` records are stored once each with their logger name
and level, the SDK's own and its dependencies' excepted (:mod:`.records`).

**Why capture can neither deadlock nor re-enter itself.** The sink is the writer's
``add_line``, which takes no lock and never blocks, prints, warns or logs: a line captured from
any thread, even from inside a print or a warning the SDK caused, is one list append. Around
it, no lock of ours is held while calling out:

- fd level: a write to fd 1/2 waits only for the relay, a separate process with its own GIL
  that waits only for the real console (as the write would without capture) and never for
  this process (it holds what this process has not read yet, up to a bound, then drops it with
  a count). The reader thread here holds no lock, never writes to fd 1/2 and never logs while
  capturing, so it cannot wait on a writing thread or feed itself.
- python level: the tee writes through first, cuts under its own re-entrant lock (string work
  only) and delivers after releasing it.
- ``logging``: the record factory formats the record and queues or delivers it, holding
  nothing of ours (at the fd level it also writes a sync request to the relay's control pipe,
  without blocking); the handler hook appends to a deque. A signal handler that logs or prints
  in the middle of either finds no lock to wait for.

**Limits.** A record's console echo is recognised for ``logging.StreamHandler`` and its
subclasses; a handler that prints another way (rich's ``RichHandler``) has its output stored as
console lines besides the record. stdout and stderr are two pipes: lines written to both within
the same instant may show in another order than without capture. Python ``warnings`` are
stderr lines. A child process still running after the run ends keeps printing to the console
through the relay (which exits when the last writer closes), not into the run.
"""

from __future__ import annotations

import atexit
import io
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from mltrail.core.types import LogLine
from mltrail.sdk.console import fds, records
from mltrail.sdk.console.lines import Echoes, LineCutter
from mltrail.sdk.console.records import quiet_library_loggers
from mltrail.sdk.console.streams import StreamTee

__all__ = ["ConsoleCapture", "quiet_library_loggers"]

Sink = Callable[[LogLine], None]


class ConsoleCapture:
    """Captures the console into ``sink`` from :meth:`start` to :meth:`stop`.

    Args:
        sink: receives each captured line (the writer's ``add_line``).
        fd_level: capture at the file-descriptor level where possible (else the Python level).
        clock: time source for stream lines.

    Attributes:
        level: ``"fd"`` or ``"python"`` once started: how the console is captured.
    """

    def __init__(
        self, sink: Sink, *, fd_level: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        self.sink = sink
        self.level: str | None = None
        self._want_fds = fd_level
        self._echoes = Echoes()
        self._cutters = {
            name: LineCutter(name, self._echoes, clock) for name in ("stdout", "stderr")
        }
        self._fds: fds.FdCapture | None = None
        self._tees: dict[str, StreamTee] = {}
        self._stopped = False

    def start(self) -> ConsoleCapture:
        if self._want_fds and fds.usable():
            try:
                self._fds = fds.FdCapture(self._cutters, self._deliver).start()
                self.level = "fd"
            except (OSError, subprocess.SubprocessError):
                self._fds = None
        if self._fds is None:
            self._start_tees()
            self.level = "python"
        records.activate(self)
        atexit.register(self.stop)
        return self

    def _start_tees(self) -> None:
        for name in ("stdout", "stderr"):
            original = getattr(sys, name)
            if original is not None:
                self._tees[name] = StreamTee(original, self._cutters[name], self._deliver)
                setattr(sys, name, self._tees[name])

    def stop(self) -> None:
        """Send unfinished lines and put the original fds or streams back. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        drained = self._fds.stop() if self._fds is not None else True
        for name, tee in self._tees.items():
            tee.close_capture()
            if getattr(sys, name) is tee:  # someone else may have replaced it since
                setattr(sys, name, tee.original)
        records.deactivate(self)
        if not drained:
            warnings.warn(
                "mltrail: the console did not take the output fast enough; the run's logs may "
                "miss the last lines",
                RuntimeWarning,
                stacklevel=2,
            )

    def record(self, line: LogLine) -> None:
        """A log record's line (see :mod:`.records`): in its place among the console lines."""
        if self._fds is not None:
            self._fds.record(line)
        else:
            self.sink(line)

    def note_echo(self, stream: Any, text: str) -> None:
        """A logging handler is about to write ``text`` to ``stream`` (see :mod:`.records`)."""
        for name in self._stream_names(stream):
            self._echoes.expect(name, text)

    def _stream_names(self, stream: Any) -> tuple[str, ...]:
        """The captured streams (``stdout``/``stderr``) that writing to ``stream`` reaches.

        A handler's stream that is no file at all (not an ``io`` object, no usable descriptor)
        is a forwarder to whatever ``sys.stderr`` or ``sys.stdout`` is at the time of the write
        (MLflow's handlers on its own, Alembic's and SQLAlchemy's loggers write through one):
        its echo may come back on either stream, so both expect it."""
        if self._stopped:
            return ()
        if self._fds is None:
            for name, tee in self._tees.items():
                if stream is tee:
                    return (name,)
        else:
            try:
                found = fds.STREAMS.get(stream.fileno())
                return (found,) if found is not None else ()
            except Exception:  # no fileno: a StringIO, a closed stream, a forwarder
                pass
        if stream is None or isinstance(stream, io.IOBase):
            return ()  # a file or buffer of its own: nothing comes back to this capture
        return ("stdout", "stderr")

    def _deliver(self, lines: list[LogLine]) -> None:
        for line in lines:
            self.sink(line)
