"""Console text cut into log lines: a newline ends a line, a ``\\r`` redraw is a progress state.

A progress bar (tqdm and the like) redraws one line with ``\\r``: each redraw is a state of the
line. The states are sent as log lines while the bar runs, at most one per second per stream,
so a live follower sees the bar move; the state the line ends with is always sent. Everything
here is pure string work on the caller's thread: no lock, no I/O.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable

from mltrail.core.types import LogLine

LEVEL = "INFO"  # stdout and stderr alike: a stderr line is not a warning (tqdm writes there)
STATE_INTERVAL_SECONDS = 1.0
MAX_LINE_CHARS = 65_536  # the store's message limit: a longer unterminated line is cut here
ECHO_SECONDS = 30.0  # how long a logging handler's console output is expected back
MAX_ECHOES = 4096


class Echoes:
    """Lines a ``logging`` handler printed to a captured stream.

    Log records are recorded from the record itself (logger name and level), so their console
    echo must not be recorded a second time as a ``stderr`` line. The handler notes the text it
    is about to write (:meth:`expect`, called before the write) and the line cutter drops the
    first line equal to it (:meth:`claim`). Plain deque operations (atomic under the GIL): no
    lock, so a signal handler that logs while the main thread is in here cannot deadlock.
    """

    def __init__(self) -> None:
        self._lines: dict[str, deque[tuple[float, str]]] = {
            "stdout": deque(maxlen=MAX_ECHOES),
            "stderr": deque(maxlen=MAX_ECHOES),
        }

    def expect(self, stream: str, text: str) -> None:
        """Note that ``text`` (one or more lines) is about to be written to ``stream``."""
        now = time.monotonic()
        self._lines[stream].extend((now, line) for line in text.split("\n"))

    def claim(self, stream: str, line: str) -> bool:
        """True (and forget it) when ``line`` is an expected echo."""
        expected = self._lines[stream]
        if not expected:
            return False
        stale = time.monotonic() - ECHO_SECONDS
        while expected and expected[0][0] < stale:
            try:
                expected.popleft()
            except IndexError:  # another thread took it meanwhile
                break
        for item in list(expected):  # a copy: logging threads append meanwhile
            if item[1] == line:
                with contextlib.suppress(ValueError):  # another thread took it meanwhile
                    expected.remove(item)
                return True
        return False


class LineCutter:
    """Cuts one stream's text into :class:`LogLine` objects (stream name, level INFO).

    Not thread-safe: one reader thread feeds it, or the caller holds a lock. The methods return
    the lines to send instead of sending them, so nothing is sent with a lock held.

    Args:
        stream: ``stdout`` or ``stderr``.
        echoes: lines to drop because a log record already stands for them.
        clock: time source for the lines.
        interval: least time between two progress states of this stream.
    """

    def __init__(
        self,
        stream: str,
        echoes: Echoes,
        clock: Callable[[], float] = time.time,
        interval: float = STATE_INTERVAL_SECONDS,
    ) -> None:
        self.stream = stream
        self._echoes = echoes
        self._clock = clock
        self._interval = interval
        self._pending = ""  # text since the last newline
        self._state_at = float("-inf")  # when the last progress state was sent
        self._sent_state: str | None = None  # the last state sent of the pending line

    def feed(self, text: str) -> list[LogLine]:
        """Take more text; return the lines (and progress states) it completes."""
        if not text:
            return []
        now = self._clock()
        out: list[LogLine] = []
        pending = self._pending + text
        if "\n" in pending:
            *lines, pending = pending.split("\n")
            for line in lines:
                self._end_line(line, now, out)
        self._pending = pending
        if "\r" in pending:
            self._redrawn(now, out)
        elif len(pending) > MAX_LINE_CHARS:
            self._pending = pending[MAX_LINE_CHARS:]
            self._end_line(pending[:MAX_LINE_CHARS], now, out)
        return out

    def tick(self) -> list[LogLine]:
        """A progress state shown for a while without a redraw: send it (rate permitting)."""
        out: list[LogLine] = []
        if "\r" in self._pending:
            self._redrawn(self._clock(), out)
        return out

    def finish(self) -> list[LogLine]:
        """The unterminated last line, if any (capture ends, or output was lost before it)."""
        out: list[LogLine] = []
        pending, self._pending = self._pending, ""
        if pending:
            self._end_line(pending, self._clock(), out)
        return out

    def _end_line(self, line: str, now: float, out: list[LogLine]) -> None:
        sent, self._sent_state = self._sent_state, None
        if "\r" in line:
            state = _visible(line)
            if state is None or state == sent:  # a cleared bar, or its last state went already
                return
            line = state
        if not self._echoes.claim(self.stream, line):
            out.append(LogLine(now, self.stream, LEVEL, line))

    def _redrawn(self, now: float, out: list[LogLine]) -> None:
        """The pending line holds redraws: maybe send the state on screen, keep only it."""
        head, _, tail = self._pending.rpartition("\r")
        shown: str | None
        if tail.strip():
            shown, kept = tail, ""
        else:  # `print(x, end="\r")`: the state shown is the one before the \r
            shown = _visible(head)
            kept = "" if shown is None else "\r" + shown
        if (
            shown is not None
            and shown != self._sent_state
            and now - self._state_at >= self._interval
        ):
            out.append(LogLine(now, self.stream, LEVEL, shown))
            self._sent_state = shown
            self._state_at = now
        if len(tail) > MAX_LINE_CHARS:
            tail = tail[-MAX_LINE_CHARS:]
        self._pending = kept + "\r" + tail  # the states before the one shown are coalesced away


def _visible(line: str) -> str | None:
    """What a terminal shows of a redrawn line: its last non-blank state (None: blank)."""
    for state in reversed(line.split("\r")):
        if state.strip():
            return state
    return None
