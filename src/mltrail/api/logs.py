"""Printing and following an experiment's log lines (``experiments.logs``).

The end condition lives in the store: ``store.tail_logs`` answers lines with the status read
before them, and ``LogTail.ended`` says when a follower is done, for every surface alike.
A follower rides out a server restart: it retries while the server is unreachable and resumes
after the last line it printed.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import IO, TypeVar

import numpy as np

from mltrail.core.errors import TransportError
from mltrail.core.liveness import ending_note
from mltrail.core.types import LogLine, LogPage
from mltrail.store.base import Store

FOLLOW_WAIT_SECONDS = 10.0  # one long poll; the store answers as soon as a line arrives
FOLLOW_RETRY_SECONDS = 300.0  # a follower waits this long for an unreachable server, then fails
FOLLOW_RETRY_AFTER_CAP = 60.0  # the longest one Retry-After is honoured for, in seconds
UNREACHABLE_NOTE = "server unreachable, retrying..."
RATE_LIMITED_NOTE = "server asked to wait (HTTP 429), retrying..."
_RETRY_FIRST_DELAY = 0.5
_RETRY_MAX_DELAY = 5.0

_T = TypeVar("_T")

_LEVEL_COLOURS = {
    "DEBUG": "\x1b[2m",
    "INFO": "",
    "WARNING": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "CRITICAL": "\x1b[1;31m",
}
_STDERR_COLOUR = "\x1b[35m"
_RESET = "\x1b[0m"
# every ANSI escape sequence: CSI (colours, cursor moves), OSC (titles, links, up to BEL or ST),
# other string commands, two-byte escapes; with disable_colors the script's own go too
_ANSI_SEQUENCE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[ -/]*[0-~])?"
)


def print_logs(
    store: Store,
    project_id: int,
    experiment_id: int,
    out: IO[str],
    printed: list[LogLine] | None,
    *,
    colours: bool,
    follow: bool,
    err: IO[str] | None = None,
    retry_seconds: float = FOLLOW_RETRY_SECONDS,
) -> None:
    """Print every line (page after page of columns, each written at once), then, with
    ``follow``, new ones until the run ends (done, failed, stopped or crashed); a follower of a
    crashed run says so in a last line. ``printed`` collects the lines (None: keep nothing, for
    exports of millions of lines).

    A follower rides out a server restart: while the server is unreachable (a TransportError
    with no answer, or a 502/503/504 from a proxy in front of it or from the server itself) or
    rate-limits it (a 429) it says so once on ``err`` (stderr by default) and asks again, 0.5 s
    apart growing to 5 s, or after the answer's ``Retry-After`` (seconds or a date, at most
    60 s), then resumes after the last line it printed; after ``retry_seconds`` of one outage
    it raises the TransportError. Other errors (401, 404, a 500, ...) raise at once, as
    without ``follow``."""
    stamps = _Stamps()
    after = 0
    ask = _Patience(err or sys.stderr, retry_seconds).call if follow else _at_once
    while page := ask(partial(store.read_log_page, project_id, experiment_id, after_seq=after)):
        out.write(format_log_columns(page, colours=colours, stamps=stamps))
        out.flush()
        if printed is not None:
            printed.extend(page.lines())
        after = page.seqs[-1]
    while follow:
        tail = ask(
            partial(
                store.tail_logs,
                project_id,
                experiment_id,
                after_seq=after,
                wait=FOLLOW_WAIT_SECONDS,
            )
        )
        if tail.lines:
            out.write(format_log_page(tail.lines, colours=colours, stamps=stamps))
            out.flush()
        if printed is not None:
            printed.extend(tail.lines)
        after = tail.last_seq
        if tail.ended:
            note = ending_note(tail.status, tail.last_heartbeat)
            if note:
                out.write(note + "\n")
                out.flush()
            return


def _at_once(read: Callable[[], _T]) -> _T:
    return read()


class _Patience:
    """A follower's reads, asked again while the server is unreachable (restarting, or a proxy
    before it answering 502/503/504) or rate-limits them (429; a 500 raises at once): one note
    on ``err`` when an outage begins, waits of 0.5 s doubling to 5 s or what the answer's
    ``Retry-After`` asked (capped at :data:`FOLLOW_RETRY_AFTER_CAP`), and the TransportError
    raised once an outage has lasted ``seconds``. Ctrl-C during a wait interrupts it."""

    def __init__(self, err: IO[str], seconds: float) -> None:
        self._err = err
        self._seconds = seconds

    def call(self, read: Callable[[], _T]) -> _T:
        began: float | None = None
        delay = _RETRY_FIRST_DELAY
        while True:
            try:
                return read()
            except TransportError as exc:
                if not exc.outage:  # a 500 is a failing request, not a restart: asking again
                    raise  # would print "unreachable" for minutes over a bug
                now = time.monotonic()
                if began is None:
                    began = now
                    self._err.write(
                        (RATE_LIMITED_NOTE if exc.rate_limited else UNREACHABLE_NOTE) + "\n"
                    )
                    self._err.flush()
                left = began + self._seconds - now
                if left <= 0:
                    raise
                asked = exc.retry_after
                wait = (
                    delay
                    if asked is None
                    else min(max(asked, _RETRY_FIRST_DELAY), FOLLOW_RETRY_AFTER_CAP)
                )
                time.sleep(min(wait, left))
                delay = min(delay * 2, _RETRY_MAX_DELAY)


_MILLIS = [f".{i:03d}" for i in range(1000)]


class _Stamps:
    """Local date and time of unix times, each second formatted once (strftime per line was
    the largest cost of printing a million lines), a page's fractions rounded at once."""

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def page(self, times: Sequence[float]) -> list[str]:
        """As ``datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]`` for each:
        the fraction rounded to microseconds as datetime rounds it, then cut to milliseconds."""
        fraction, whole = np.modf(np.asarray(times, dtype=np.float64))
        micros = np.round(fraction * 1e6).astype(np.int64)
        seconds = whole.astype(np.int64)
        seconds += micros >= 1_000_000
        seconds -= micros < 0
        micros %= 1_000_000
        if len(self._seconds) > 100_000:  # a long follow: keep the cache small
            self._seconds.clear()
        texts = self._seconds
        for second in np.unique(seconds).tolist():
            if second not in texts:
                texts[second] = datetime.fromtimestamp(second).strftime("%Y-%m-%d %H:%M:%S")
        millis = (micros // 1000).tolist()
        return [texts[s] + _MILLIS[m] for s, m in zip(seconds.tolist(), millis, strict=True)]


def format_log_page(
    lines: Sequence[LogLine], *, colours: bool, stamps: _Stamps | None = None
) -> str:
    """Lines as :func:`format_log_line` formats each, newline-terminated, in one string."""
    return format_log_columns(LogPage.of_lines(lines), colours=colours, stamps=stamps)


def format_log_columns(page: LogPage, *, colours: bool, stamps: _Stamps | None = None) -> str:
    """A page's lines as :func:`format_log_line` formats each, newline-terminated, in one
    string, made from its columns."""
    when = (stamps or _Stamps()).page(page.times)
    columns = (when, page.streams, page.levels, page.messages)
    if not colours:
        # a list, not a generator: join makes one of it anyway, and a comprehension's list is
        # built faster (a fifth of a microsecond per line of a million-line export)
        text = "\n".join([f"{t} {s} {v} {m}" for t, s, v, m in zip(*columns, strict=True)])
        if "\x1b" in text:  # one pass over the page, when it holds an escape at all
            text = _ANSI_SEQUENCE.sub("", text)
        return text + "\n"
    return "".join(_coloured(t, s, v, m) + "\n" for t, s, v, m in zip(*columns, strict=True))


def format_log_line(line: LogLine, *, colours: bool) -> str:
    """``2026-11-28 12:00:01.123 stdout INFO message``, coloured by level and stream."""
    return format_log_page([line], colours=colours)[:-1]


def _coloured(stamp: str, stream: str, level: str, message: str) -> str:
    text = f"{stamp} {stream} {level} {message}"
    colour = _LEVEL_COLOURS.get(level, "")
    if not colour and stream == "stderr":
        colour = _STDERR_COLOUR
    return f"{colour}{text}{_RESET}" if colour else text
