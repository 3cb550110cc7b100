"""Printing and following an experiment's log lines (``experiments.logs``).

The end condition lives in the store: ``store.tail_logs`` answers lines with the status read
before them, and ``LogTail.ended`` says when a follower is done, for every surface alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import IO

import numpy as np

from mltrail.core.liveness import ending_note
from mltrail.core.types import LogLine, LogPage
from mltrail.store.base import Store

FOLLOW_WAIT_SECONDS = 10.0  # one long poll; the store answers as soon as a line arrives

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
) -> None:
    """Print every line (page after page of columns, each written at once), then, with
    ``follow``, new ones until the run ends (done, failed, stopped or crashed); a follower of a
    crashed run says so in a last line. ``printed`` collects the lines (None: keep nothing, for
    exports of millions of lines)."""
    stamps = _Stamps()
    after = 0
    while page := store.read_log_page(project_id, experiment_id, after_seq=after):
        out.write(format_log_columns(page, colours=colours, stamps=stamps))
        out.flush()
        if printed is not None:
            printed.extend(page.lines())
        after = page.seqs[-1]
    while follow:
        tail = store.tail_logs(project_id, experiment_id, after_seq=after, wait=FOLLOW_WAIT_SECONDS)
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
