"""A real socket server on 127.0.0.1 that answers too slowly on cue: one byte of its answer
every so often, each byte within any per-read timeout, so only a deadline ends the request.

Each connection reads the request's head (and its body, by Content-Length), then plays the
server's ``plan`` for that connection (the first, the second...; the last plan repeats):

- ``("drip", interval)``: an answer's bytes one at a time, ``interval`` seconds apart.
- ``("answer", status, headers, body)``: a whole answer at once (a 503 with Retry-After).
- ``("stream", head_fields, block, interval, total)``: a 200 head at once with
  ``head_fields``, then ``total`` body bytes in blocks of ``block`` bytes ``interval`` apart
  (a slow but steady download, or a drip when ``block`` is 1).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

DRIP_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    + b" " * 4096
)


class DripServer:
    """Serves on a free loopback port in daemon threads until :meth:`stop`.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        connections: how many connections it accepted.
        sent: body bytes sent, over every connection.
    """

    def __init__(self, plans: Sequence[tuple[Any, ...]]) -> None:
        self._plans = list(plans)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self.sent = 0
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            with self._lock:
                plan = self._plans[min(self.connections, len(self._plans) - 1)]
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn, plan), daemon=True).start()

    def _serve(self, conn: socket.socket, plan: tuple[Any, ...]) -> None:
        with conn:
            try:
                _read_request(conn)
                getattr(self, f"_{plan[0]}")(conn, *plan[1:])
            except OSError:  # the client gave up: what a deadline does
                return

    def _drip(self, conn: socket.socket, interval: float) -> None:
        for byte in DRIP_ANSWER:
            if self._stopped.wait(interval):
                return
            conn.sendall(bytes([byte]))

    def _answer(
        self, conn: socket.socket, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        fields = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
        head = f"HTTP/1.1 {status} Answer\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        conn.sendall(head.encode("latin-1") + b"\r\n" + body)

    def _stream(
        self, conn: socket.socket, fields: dict[str, str], block: int, interval: float, total: int
    ) -> None:
        head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        conn.sendall(f"{head}Content-Length: {total}\r\n\r\n".encode("latin-1"))
        left = total
        while left and not self._stopped.wait(interval):
            count = min(block, left)
            conn.sendall(b"x" * count)
            left -= count
            with self._lock:
                self.sent += count


def _read_request(conn: socket.socket) -> None:
    """The request's head and body (by Content-Length), read and dropped."""
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            raise OSError("the client closed")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        more = conn.recv(65536)
        if not more:
            raise OSError("the client closed")
        body += more


@contextlib.contextmanager
def drip_server(*plans: tuple[Any, ...]) -> Iterator[DripServer]:
    """A :class:`DripServer` for the block (default plan: drip a byte every 0.2 s)."""
    server = DripServer(plans or [("drip", 0.2)])
    try:
        yield server
    finally:
        server.stop()


def elapsed(start: float) -> float:
    return time.monotonic() - start
