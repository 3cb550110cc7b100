"""Console capture at the file-descriptor level (POSIX): fd 1 and 2 go through the console relay.

:meth:`FdCapture.start` points fd 1 and fd 2 at new pipes (pseudo-terminals when the console is
a terminal, so ``isatty()``, colours and line buffering stay as they were) and starts the
relay process (:mod:`mltrail.sdk.console.relay`), which prints every byte unchanged to the
original fds and copies it back to a daemon thread here that cuts log lines. So whatever writes
to fd 1 or 2 is captured: ``print``, ``sys.stdout.buffer``, ``os.write``, C extensions,
``os.system`` and ``subprocess`` children.

:meth:`FdCapture.stop` (at the experiment's end, on an exception, at interpreter exit) flushes
Python's and C's buffers, puts the original fds back exactly (``dup2`` of the saved copies),
asks the relay to drain and waits for it (bounded), so the last unterminated line is kept and
exit never hangs. Should the relay die, the reader thread puts the fds back itself and reads
what is left in the pipes, whose read ends this process keeps open for that reason (so a write
never fails with a broken pipe meanwhile).

Log records keep their place among the lines: a record is queued with a number and the relay
asked (without blocking) to sync; it answers once it has read everything written before the
request, and the reader thread delivers the record after those lines. At most one request is
outstanding: records created meanwhile wait for the next one, which the reader asks for.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
import select
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path

from mltrail.core.types import LogLine
from mltrail.sdk.console.lines import LineCutter

RELAY = Path(__file__).with_name("relay.py")
PIPE_BYTES = 1 << 20  # what a writer may put ahead of the relay before it waits
DRAIN_TIMEOUT_SECONDS = 10.0  # the relay forwards to a console that does not read: give up
TICK_MS = 500  # how often an idle progress bar's state is looked at
STREAMS = {1: "stdout", 2: "stderr"}
TAGS = {ord("o"): "stdout", ord("e"): "stderr"}
MAX_QUEUED_RECORDS = 10_000  # past this (the relay stuck), records go at once, out of place

Deliver = Callable[[list[LogLine]], None]


def usable() -> bool:
    """True where fd capture works: POSIX, and ``sys.stdout``/``sys.stderr`` write to fd 1/2.

    Not under pytest's capture or in Jupyter (their streams are not the process's fds), nor
    with a closed fd 1 or 2, nor without a Python executable to run the relay with.
    """
    if os.name != "posix" or not sys.executable:
        return False
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        try:
            if stream is None or stream.fileno() != fd:
                return False
            os.fstat(fd)
        except (AttributeError, OSError, ValueError):
            return False
    return True


class FdCapture:
    """Routes fd 1 and 2 through the relay until :meth:`stop`.

    Args:
        cutters: the line cutter of each stream (``stdout``, ``stderr``).
        deliver: receives the lines cut and the records placed (the console capture's sink).
    """

    def __init__(self, cutters: dict[str, LineCutter], deliver: Deliver) -> None:
        self._cutters = cutters
        self._deliver = deliver
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        # invalid bytes stay as lone surrogates, which the store keeps exactly (core/text.py)
        self._decoders = {
            name: codecs.getincrementaldecoder(encoding)(errors="surrogateescape")
            for name in cutters
        }
        self._pid = os.getpid()
        self._saved: dict[int, int] = {}  # fd -> a copy of the original console fd
        self._held: dict[int, int] = {}  # fd -> the read end of its pipe, kept for _recover
        self._copy = -1
        self._control = -1
        self._relay: subprocess.Popen[bytes] | None = None
        self._fd_lock = threading.Lock()  # around dup2/close only: never held during I/O
        self._restored = False
        self._stopped = False
        self._closed = False  # lines cut after stop are not delivered
        self._drained = threading.Event()
        self._records: deque[tuple[int, LogLine]] = deque()
        self._numbers = itertools.count(1)
        self._asked = 0  # the highest record number the relay was asked to sync up to
        self._synced = 0  # the highest it answered

    def start(self) -> FdCapture:
        """Start the relay and point fd 1 and 2 at it.

        Raises:
            OSError, subprocess.SubprocessError: fds or the relay unavailable (nothing changed).
        """
        flush_buffers()
        opened: list[int] = []
        try:
            for fd in STREAMS:
                self._saved[fd] = _keep(opened, os.dup(fd))
            ends = {fd: _channel(self._saved[fd], opened) for fd in STREAMS}
            self._copy, copy_w = (_keep(opened, end) for end in os.pipe())
            control_r, self._control = (_keep(opened, end) for end in os.pipe())
            args = [ends[1][0], self._saved[1], ends[2][0], self._saved[2], copy_w]
            self._relay = subprocess.Popen(
                [sys.executable, "-I", "-S", str(RELAY), *map(str, args)],
                stdin=control_r,
                stdout=self._saved[1],
                stderr=self._saved[2],
                pass_fds=args,
            )
        except BaseException:
            for fd in opened:
                os.close(fd)
            raise
        os.close(control_r)
        os.close(copy_w)
        os.set_blocking(self._control, False)  # a record never waits for the relay
        for fd, (read_end, write_end) in ends.items():
            self._held[fd] = read_end
            os.dup2(write_end, fd)
            os.close(write_end)
        threading.Thread(target=self._read, name="mltrail-console", daemon=True).start()
        return self

    def stop(self) -> bool:
        """Put the original fds back and wait for the relay to drain.

        Returns:
            False when the relay did not drain in time (the last lines may be missing).
        """
        if self._stopped:
            return True
        self._stopped = True
        if os.getpid() != self._pid:  # a forked child: its own fds only, the relay is not its
            self._restore()
            return True
        flush_buffers()
        self._restore()
        self._request(b"d", 0, wait=True)
        drained = self._drained.wait(DRAIN_TIMEOUT_SECONDS)
        self._closed = True  # from now on records go straight to the sink
        self._release(None)  # those queued since the drain (all, if the reader is stuck)
        with self._fd_lock:
            for fd in (self._control, *self._saved.values(), *self._held.values()):
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._relay is not None:  # reap it when no child of ours keeps the pipes open
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._relay.wait(0.2)
        return drained

    def record(self, line: LogLine) -> None:
        """Deliver a log record's line after every byte written before it (any thread)."""
        if os.getpid() != self._pid:  # a forked child: its records never reach this run
            return
        if self._closed or len(self._records) >= MAX_QUEUED_RECORDS:
            self._deliver([line])
            return
        number = next(self._numbers)
        self._records.append((number, line))
        if self._asked <= self._synced:  # no request outstanding: ask; else the reader will
            self._request(b"s", number)

    def _request(self, tag: bytes, number: int, *, wait: bool = False) -> None:
        """Send a control request; a full channel (the relay busy) skips it unless ``wait``."""
        for _ in range(50 if wait else 1):
            try:
                os.write(self._control, tag + number.to_bytes(8, "big"))
            except BlockingIOError:
                if wait:
                    time.sleep(0.1)
                continue
            except OSError:  # the relay is gone: the reader recovers and delivers
                return
            if tag == b"s":
                self._asked = max(self._asked, number)
            return

    def _release(self, up_to: int | None) -> None:
        """Deliver the queued records numbered up to ``up_to`` (all with None), in order."""
        records = self._records
        while records and (up_to is None or records[0][0] <= up_to):
            try:
                _, line = records.popleft()
            except IndexError:
                break
            self._deliver([line])

    def _restore(self) -> None:
        with self._fd_lock:
            if not self._restored:
                self._restored = True
                for fd, saved in self._saved.items():
                    os.dup2(saved, fd)

    # --- the reader thread --------------------------------------------------------------------
    def _read(self) -> None:
        """Cut lines from the relay's copy until it says it drained (or it is gone).

        Holds no lock, never writes to fd 1 or 2 while capturing, never logs: nothing a writing
        thread holds can stop it, and nothing it does comes back to it.
        """
        poller = select.poll()
        poller.register(self._copy, select.POLLIN)
        frames = bytearray()
        try:
            while True:
                if not poller.poll(TICK_MS):
                    for cutter in self._cutters.values():
                        self._send(cutter.tick())
                    continue
                chunk = os.read(self._copy, 1 << 16)
                if not chunk:
                    break
                frames += chunk
                if self._take_frames(frames):
                    return
            self._recover()
        except Exception:  # never let a bug here leave the pipes unread
            self._recover()
        finally:
            os.close(self._copy)

    def _take_frames(self, frames: bytearray) -> bool:
        """Handle every whole frame; True once the relay said it drained."""
        while len(frames) >= 5:
            size = int.from_bytes(frames[1:5], "big")
            if len(frames) < 5 + size:
                return False
            tag, payload = frames[0], bytes(frames[5 : 5 + size])
            del frames[: 5 + size]
            if tag in TAGS:
                name = TAGS[tag]
                self._send(self._cutters[name].feed(self._decoders[name].decode(payload)))
            elif tag == ord("g"):  # the relay dropped output: the pending line ends there
                self._send(self._cutters[TAGS[payload[0]]].finish())
            elif tag == ord("s"):
                self._synced = int.from_bytes(payload, "big")
                self._release(self._synced)
                with contextlib.suppress(IndexError):  # created while it was out: ask again
                    self._request(b"s", self._records[-1][0])
            elif tag == ord("d"):
                self._finish()
                return True
        return False

    def _finish(self) -> None:
        self._release(None)
        for name, cutter in self._cutters.items():
            self._send(cutter.feed(self._decoders[name].decode(b"", final=True)))
            self._send(cutter.finish())
        self._drained.set()

    def _send(self, lines: list[LogLine]) -> None:
        if lines and not self._closed:
            self._deliver(lines)

    def _recover(self) -> None:
        """The relay is gone: put the fds back, relay what is left in the pipes ourselves."""
        if self._drained.is_set():
            return
        self._restore()
        try:
            for fd, read_end in self._held.items():
                os.set_blocking(read_end, False)
                while data := _read_some(read_end):
                    _write_all(self._saved[fd], data)
                    name = STREAMS[fd]
                    self._send(self._cutters[name].feed(self._decoders[name].decode(data)))
        except OSError:
            pass
        self._finish()
        if not self._stopped:
            with contextlib.suppress(Exception):  # a "warnings as errors" filter, say
                warnings.warn(
                    "mltrail: the console relay ended; console output is no longer recorded",
                    RuntimeWarning,
                    stacklevel=1,
                )


def flush_buffers() -> None:
    """Flush Python's text streams and C's stdio buffers, so what was written goes out now."""
    streams = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    for stream in {id(s): s for s in streams if s is not None}.values():
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


def _keep(opened: list[int], fd: int) -> int:
    opened.append(fd)
    return fd


def _channel(console: int, opened: list[int]) -> tuple[int, int]:
    """(read end, write end) standing in for ``console``: a pty for a terminal, else a pipe."""
    if os.isatty(console):
        import fcntl
        import termios

        master, slave = (_keep(opened, end) for end in os.openpty())
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST  # bytes pass unchanged: the real terminal does the \n -> \r\n
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(console, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
        return master, slave
    read_end, write_end = (_keep(opened, end) for end in os.pipe())
    with contextlib.suppress(OSError, AttributeError):  # Linux only; a smaller pipe works too
        import fcntl

        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return read_end, write_end


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:  # nothing left (EAGAIN), or a pty with no writer (EIO)
        return b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
