"""The console relay: a small process that prints what the training process writes to fd 1 and 2.

Started by :mod:`mltrail.sdk.console.fds` as ``python -I -S relay.py OUT_SRC OUT_CONSOLE ERR_SRC
ERR_CONSOLE COPY`` (stdlib only, never imports mltrail). It reads the two captured pipes (or
pseudo-terminals), writes every byte unchanged to the original console fds, and copies it,
framed, to the ``COPY`` pipe that the SDK reads to cut log lines. Its standard input is the
control channel, 9-byte requests (a tag and a big-endian number): ``s``+N asks it to read what
is in both sources now and then send an ``s`` frame with N back, so the SDK can place log
record N after everything written before it; ``d`` does the same at the end ("drained").

Why a process and not a thread: a C extension that writes more than a pipe holds while it keeps
the GIL would wait forever for a reader thread that needs that GIL. The relay has its own
interpreter, so the console never waits on the training process; and it never waits on the SDK
either: the copy pipe is written without blocking, what does not fit is held in memory (up to
``MAX_HELD`` bytes) and beyond that dropped with a gap frame saying how much.

Frames: one tag byte (``o`` stdout, ``e`` stderr, ``g`` gap, ``s`` synced, ``d`` drained), a 4-byte
big-endian length, the payload. A gap's payload is the stream's tag and the decimal count of
bytes lost; a sync's is the request's number.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import sys
import termios

CHUNK = 1 << 16
MAX_HELD = 32 << 20
DRAIN_LIMIT = 256 << 20  # bytes read at most while draining, however fast writers keep writing
FINAL_SEND_SECONDS = 5.0
CONTROL = 0
REQUEST = 9  # control requests: a tag byte and an 8-byte number


def frame(tag: bytes, payload: bytes) -> bytes:
    return tag + len(payload).to_bytes(4, "big") + payload


class Relay:
    """Forwards sources to consoles and copies them to the SDK until every writer is gone."""

    def __init__(self, pairs: list[tuple[int, int, bytes]], copy: int) -> None:
        self.consoles = {source: console for source, console, _ in pairs}
        self.tags = {source: tag for source, _, tag in pairs}
        self.copy: int | None = copy
        self.requests = bytearray()
        self.held = bytearray()
        self.dropped = {tag: 0 for _, _, tag in pairs}
        self.broken: set[int] = set()  # consoles that can no longer be written to
        self.poller = select.poll()
        for source in self.consoles:
            os.set_blocking(source, False)
            self.poller.register(source, select.POLLIN)
        os.set_blocking(copy, False)
        self.poller.register(CONTROL, select.POLLIN)

    def run(self) -> None:
        while self.consoles:
            timeout = 50 if self.held else None  # retry the copy pipe while something is held
            for fd, _ in self.poller.poll(timeout):
                if fd == CONTROL:
                    self.on_control()
                elif fd in self.consoles:
                    self.forward(fd)
            self.send_held()
        self.send_rest()

    def on_control(self) -> None:
        try:
            data = os.read(CONTROL, 4096)
        except OSError:
            data = b""
        if not data:  # the SDK closed it (or is gone): keep relaying until the writers go
            self.poller.unregister(CONTROL)
            return
        self.requests += data
        whole = len(self.requests) - len(self.requests) % REQUEST
        requests = [bytes(self.requests[i : i + REQUEST]) for i in range(0, whole, REQUEST)]
        del self.requests[:whole]
        if not requests:
            return
        self.drain()
        # past MAX_HELD too, the SDK waits for these; the highest number answers all before it
        for tag in (b"s", b"d"):
            numbers = [request[1:] for request in requests if request[:1] == tag]
            if numbers:
                self.held += frame(tag, max(numbers))

    def drain(self) -> None:
        budget = DRAIN_LIMIT
        for source in list(self.consoles):
            while budget > 0 and source in self.consoles:
                size = self.forward(source)
                if size <= 0:
                    break
                budget -= size

    def forward(self, source: int) -> int:
        """Relay one read of ``source``: bytes read, 0 when none waits, -1 at its end."""
        try:
            data = os.read(source, CHUNK)
        except BlockingIOError:
            return 0
        except OSError:  # EIO: a pseudo-terminal whose every writer closed
            data = b""
        if not data:
            self.poller.unregister(source)
            del self.consoles[source]
            os.close(source)
            return -1
        self.to_console(self.consoles[source], data)
        self.hold(self.tags[source], data)
        return len(data)

    def to_console(self, console: int, data: bytes) -> None:
        if console in self.broken:
            return
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(console, view) :]
            except BlockingIOError:  # the user's console fd is non-blocking: wait for it
                wait_writable(console, 1000)
            except OSError:  # closed pipe, hung-up terminal: the copy still goes to the run
                self.broken.add(console)
                return

    def hold(self, tag: bytes, data: bytes) -> None:
        if self.copy is None:
            return
        if len(self.held) + len(data) > MAX_HELD:  # the SDK is far behind: drop, say how much
            self.dropped[tag] += len(data)
            return
        if self.dropped[tag]:
            self.held += frame(b"g", tag + str(self.dropped[tag]).encode())
            self.dropped[tag] = 0
        self.held += frame(tag, data)

    def send_held(self) -> None:
        if not self.held or self.copy is None:
            return
        try:
            del self.held[: os.write(self.copy, self.held)]
        except BlockingIOError:
            pass
        except OSError:  # the SDK closed its end (capture stopped, or the process is gone)
            os.close(self.copy)
            self.copy = None
            self.held.clear()

    def send_rest(self) -> None:
        """Every writer is gone: hand the SDK what is still held, for a few seconds at most."""
        waited = 0.0
        while self.held and self.copy is not None and waited < FINAL_SEND_SECONDS:
            wait_writable(self.copy, 100)
            waited += 0.1
            self.send_held()


def wait_writable(fd: int, milliseconds: int) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    poller.poll(milliseconds)


def copy_window_size(pairs: list[tuple[int, int, bytes]]) -> None:
    """The terminal was resized: give each pseudo-terminal the console's new size."""
    for source, console, _ in pairs:
        with contextlib.suppress(OSError):
            if os.isatty(source):
                size = fcntl.ioctl(console, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl.ioctl(source, termios.TIOCSWINSZ, size)


def main(argv: list[str]) -> None:
    out_src, out_console, err_src, err_console, copy = (int(a) for a in argv)
    pairs = [(out_src, out_console, b"o"), (err_src, err_console, b"e")]
    # The relay lives exactly as long as something writes to it: signals meant for the training
    # process (Ctrl-C, a scheduler's SIGTERM to the process group) must not cut its console.
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(signal.SIGWINCH, lambda *_: copy_window_size(pairs))
    Relay(pairs, copy).run()


if __name__ == "__main__":
    main(sys.argv[1:])
