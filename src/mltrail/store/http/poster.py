"""A lean HTTP/1.1 POST for point batches: two system calls per request where httpx makes ten.

The SDK's writer thread sends point batches while training threads run Python code. Every
blocking system call releases the GIL, and getting it back waits for the interpreter's switch
interval (5 ms) behind those threads, longer with several of them. httpx (through httpcore)
makes about ten GIL-releasing calls per request: a readability poll before reusing the
connection, a poll and a send for the head, a poll and a send for the body, a poll and a read
for the answer, two more polls after it. :class:`Poster` keeps one blocking connection and sends
the whole request with one ``send`` and reads the answer with one ``recv`` (more only when
it is longer than 64 KiB or split), so a batch costs two waits for the GIL instead of ten.

Timeouts are the socket's own (``SO_SNDTIMEO``/``SO_RCVTIMEO``), not Python's: a Python
timeout would poll before each call. A request's deadline (:mod:`.deadline`) lowers them, with
one ``setsockopt`` (which keeps the GIL), only when less is left of it than a timeout. Only plain ``http://`` servers reached without a proxy use
it (:func:`lean_target`); everything else, and every other request, goes through httpx.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import urllib.request
from urllib.parse import urlsplit

from mltrail.core.errors import TransportError
from mltrail.store.http.deadline import Bound, clamp

_RECV = 65536
MAX_HEAD_BYTES = 64 * 1024  # an answer's head past this is no server's (the server's own limit)
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a point batch's answer is a receipt: far below this


class Answer:
    """The status, head fields (names in lower case) and body of one answer (what
    :func:`~.transport.decode` reads)."""

    def __init__(self, status_code: int, content: bytes, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.content = content
        self.headers = headers

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def lean_target(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of a plain-HTTP server reached directly, or ``None`` (https, a proxy)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    proxies = urllib.request.getproxies()
    if ("http" in proxies or "all" in proxies) and not urllib.request.proxy_bypass(parts.hostname):
        return None
    return parts.hostname, parts.port or 80


class Poster:
    """One keep-alive connection POSTing bodies to one server (one thread at a time).

    Args:
        host / port: the server.
        headers: sent with every request (``Authorization``, ``User-Agent``...).
        timeout: seconds one send or one read may block.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str], timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        name = f"[{host}]" if ":" in host else host  # an IPv6 address
        netloc = name if port == 80 else f"{name}:{port}"
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": netloc, **headers}.items())
        self._sock: socket.socket | None = None
        self._limits: dict[int, float] = {}  # SO_SNDTIMEO / SO_RCVTIMEO as set now
        self._whole = float(max(int(timeout), 1))  # the kernel's timeout outside deadlines

    def post(
        self, path: str, content: bytes, content_type: str, bound: Bound | None = None
    ) -> Answer:
        """Send one request and read its answer, within ``bound`` (:mod:`.deadline`); a kept
        connection the server closed in between is reopened once (the request was not read:
        safe to send again).

        Raises:
            TransportError: the server could not be reached, broke the connection, or was
                still answering when ``bound`` ran out.
        """
        head = (
            f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: {content_type}\r\n"
            f"Content-Length: {len(content)}\r\n\r\n"
        ).encode("latin-1")
        request = head + content  # one send: one wait for the GIL
        for fresh in (self._sock is None, True):
            try:
                return self._exchange(request, bound)
            except _Malformed as exc:
                self.close()
                raise TransportError(
                    f"the server at {self.host}:{self.port} sent {exc} (not an mltrail server?)"
                ) from None
            except (OSError, _Closed) as exc:
                self.close()
                if bound is not None and bound.expired:
                    raise TransportError(
                        f"the mltrail server at {self.host}:{self.port} was too slow: "
                        f"{bound.explain()}"
                    ) from exc
                if fresh or not isinstance(exc, _Closed | ConnectionError):
                    raise TransportError(
                        f"cannot reach the mltrail server at {self.host}:{self.port}: {exc!r}"
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def abort(self) -> None:
        """From another thread: end the connection a request may be waiting on (it fails with
        a :class:`TransportError` at once instead of at its timeout)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)

    def _connect(self, bound: Bound | None) -> socket.socket:
        wait = clamp(bound, self.timeout)
        sock = socket.create_connection((self.host, self.port), timeout=wait)
        sock.settimeout(None)  # blocking: no poll before each call; the kernel times out
        self._limits = {}
        self._sock = sock
        self._limit(socket.SO_SNDTIMEO, self._whole)
        self._limit(socket.SO_RCVTIMEO, self._whole)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _limit(self, option: int, seconds: float) -> None:
        """Set the kernel's ``SO_SNDTIMEO``/``SO_RCVTIMEO`` when it changes (0 would be none)."""
        if self._limits.get(option) == seconds or self._sock is None:
            return
        whole, part = divmod(max(seconds, 0.001), 1.0)
        self._sock.setsockopt(
            socket.SOL_SOCKET, option, struct.pack("ll", int(whole), int(part * 1e6))
        )
        self._limits[option] = seconds

    def _bound(self, option: int, bound: Bound | None) -> None:
        """The kernel's timeout for the next call: the timeout, or less when ``bound`` leaves
        less (``TimeoutError`` when it leaves nothing); no system call while it is unchanged."""
        seconds = self._whole
        left = None if bound is None else bound.remaining()
        if left is not None and left < seconds:
            seconds = clamp(bound, seconds) or seconds
        if self._limits.get(option) != seconds:
            self._limit(option, seconds)

    def _exchange(self, request: bytes, bound: Bound | None) -> Answer:
        sock = self._sock or self._connect(bound)
        self._bound(socket.SO_SNDTIMEO, bound)
        sent = sock.send(request)  # blocking: all of it unless SO_SNDTIMEO cut it short
        while sent < len(request):
            self._bound(socket.SO_SNDTIMEO, bound)
            sent += sock.send(memoryview(request)[sent:])
        self._bound(socket.SO_RCVTIMEO, bound)
        data = sock.recv(_RECV)
        if not data:
            raise _Closed("the server closed the connection")
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD_BYTES:  # else gathered without bound (and searched again)
                raise _Malformed(f"an answer head over {MAX_HEAD_BYTES // 1024} KiB")
            self._bound(socket.SO_RCVTIMEO, bound)
            more = sock.recv(_RECV)
            if not more:
                raise _Closed("the answer's head was cut")
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = _status(lines[0])
        fields = dict(_field(line) for line in lines[1:] if ":" in line)
        if "chunked" in fields.get("transfer-encoding", ""):
            raise OSError("a chunked answer")  # the server never sends one to a POST
        length = _length(fields.get("content-length", "0"))
        while len(body) < length:
            self._bound(socket.SO_RCVTIMEO, bound)
            more = sock.recv(max(length - len(body), _RECV))
            if not more:
                raise _Closed("the answer's body was cut")
            body += more
        if fields.get("connection", "").lower() == "close":
            self.close()
        return Answer(status, body[:length], fields)


class _Closed(Exception):
    """The connection ended before a whole answer came."""


class _Malformed(Exception):
    """An answer no HTTP server sends (the message says what came)."""


def _status(line: str) -> int:
    """The status of an answer's status line (``HTTP/1.1 200 OK``); _Malformed when none
    (a TransportError to the caller, not a ValueError from deep in the read)."""
    parts = line.split(" ", 2)
    code = parts[1] if len(parts) > 1 and parts[0].startswith("HTTP/") else ""
    if len(code) != 3 or not code.isascii() or not code.isdigit():
        raise _Malformed(f"an answer whose status line is none: {line[:80]!r}")
    return int(code)


def _length(value: str) -> int:
    """An answer's Content-Length; _Malformed for one that is no number or past
    :data:`MAX_ANSWER_BYTES` (its read allocated that many bytes at once: a MemoryError)."""
    if (
        not value.isascii()
        or not value.isdigit()
        or len(value) > 18
        or int(value) > MAX_ANSWER_BYTES
    ):
        raise _Malformed(f"an answer with Content-Length {value[:40]!r}")
    return int(value)


def _field(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()
