"""Artifact bytes over a plain HTTP connection of their own (the standard library's
``http.client``), for ``http://`` servers reached without a proxy (:func:`.poster.lean_target`).

httpx reads a response body through httpcore in 64 KiB reads, each a new bytes object passed
through h11 and three layers of Python: a 2 GiB download cost its client about 1 s of CPU per
GiB before any hashing or writing. ``http.client`` parses the head, then
:meth:`~http.client.HTTPResponse.readinto` fills the caller's buffer straight from the socket
(``recv_into``), so :func:`~mltrail.store.blobs.staging.copy_verified` reuses a few buffers for
the whole file. An upload from a local file goes out with ``sendfile`` (the kernel copies
from the page cache; the file is hashed by another thread meanwhile) where httpx sent 1 MiB
bytes objects read in Python. Everything else, and every server reached over https or a proxy,
goes through httpx.

Deadlines (:mod:`.deadline`): a request's connect, send and answer head end within the deadline,
every attempt included; the bytes of a transfer, either way, must move at least
:data:`~.deadline.FLOOR_BYTES` in every deadline window instead, so a large file at a slow but
steady rate is never cut off and a dripping one is.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlencode

from mltrail.core.artifacts import TRAILER_BYTES
from mltrail.core.errors import TransportError, ValidationError
from mltrail.store.artifacts import CHUNK_BYTES, Readable, SendableFile
from mltrail.store.http.deadline import (
    DEFAULT_DEADLINE,
    Bound,
    BoundSocket,
    Deadline,
    Progress,
    clamp,
    outlasts,
)
from mltrail.store.http.poster import Answer
from mltrail.store.http.transport import RETRY_STATUSES, RetryPolicy


class DirectConnection:
    """Opens one connection per transfer to a plain-HTTP server.

    Args:
        host / port: the server.
        prefix: the API's path (``/api/v1`` below the server's base path).
        headers: sent with every request (``Authorization``, ``User-Agent``...).
        timeout: seconds one connect, send or read may block.
        policy: how often a request that may be repeated is sent again.
        deadline: seconds a request may take up to its answer's head (every attempt), and the
            window in which a transfer must move :data:`~.deadline.FLOOR_BYTES`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        headers: Mapping[str, str],
        timeout: float,
        policy: RetryPolicy,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.headers = dict(headers)
        self.timeout = timeout
        self.policy = policy
        self.deadline = deadline

    def url(self, path: str, params: Mapping[str, object] | None = None) -> str:
        """The request target of API ``path`` (already %-quoted) with ``params``."""
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        return self.prefix + path + (f"?{query}" if query else "")

    def connect(self, bound: Bound) -> http.client.HTTPConnection:
        """A connected connection whose socket is a :class:`BoundSocket` under ``bound``;
        connection faults retried as the policy and ``bound`` allow (nothing was sent yet).

        Raises:
            TransportError: the server stayed unreachable.
        """
        for attempt in range(self.policy.retries + 1):
            pause = self.policy.delay(attempt)
            conn = None
            try:
                wait = clamp(bound, self.timeout)
                conn = http.client.HTTPConnection(self.host, self.port, timeout=wait)
                conn.connect()
                assert conn.sock is not None
                conn.sock = BoundSocket.adopt(conn.sock, bound, self.timeout)
                return conn
            except OSError as exc:
                if conn is not None:
                    conn.close()
                if attempt == self.policy.retries or outlasts(bound, pause):
                    raise self._unreachable(exc, bound) from exc
            self.policy.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a GET and read its answer's head (retried on faults and 429/502/503/504, as
        :meth:`RetryPolicy.pause` says: a read may be repeated); the caller reads the body and
        closes the connection.

        Raises:
            TransportError: the server stayed unreachable or broke the connection.
        """
        waited = 0.0
        bound = Deadline(self.deadline)
        for attempt in range(self.policy.retries + 1):
            last = attempt == self.policy.retries
            pause = self.policy.delay(attempt)
            conn = self.connect(bound)
            try:
                conn.request("GET", url, headers=self.headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if last or outlasts(bound, pause):
                    raise self._unreachable(exc, bound) from exc
            else:
                if last or response.status not in RETRY_STATUSES:
                    self._pace(conn)
                    return conn, response
                header = response.getheader("Retry-After")
                asked = self.policy.pause(attempt, waited, response.status, header)
                if asked is None or outlasts(bound, asked):  # past the patience left
                    self._pace(conn)
                    return conn, response
                pause = asked
                conn.close()
            self.policy.sleep(pause)
            waited += pause
        raise AssertionError("unreachable")  # pragma: no cover

    def _pace(self, conn: http.client.HTTPConnection, limit: float | None = None) -> None:
        """From here on, ``conn``'s bytes must move :data:`~.deadline.FLOOR_BYTES` in every
        deadline window (its head came: the body of a large file may take hours)."""
        sock = conn.sock
        if isinstance(sock, BoundSocket):
            sock.bound = Progress(self.deadline)
            sock.limit = self.timeout if limit is None else limit

    def body_readers(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> tuple[Iterator[bytes], Callable[[memoryview], int]]:
        """The answer's body as chunks and as a ``readinto``; a fault or a stall while reading
        is a :class:`TransportError` naming the server (a socket error before)."""
        sock = conn.sock

        def readinto(buffer: memoryview) -> int:
            try:
                return response.readinto(buffer)
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(exc, getattr(sock, "bound", None)) from exc

        def read() -> bytes:
            try:
                return response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(exc, getattr(sock, "bound", None)) from exc

        return iter(read, b""), readinto

    def _unreachable(self, exc: BaseException, bound: Bound | None = None) -> TransportError:
        where = f"{self.host}:{self.port}"
        if bound is not None and bound.expired:
            return TransportError(f"the mltrail server at {where} was too slow: {bound.explain()}")
        return TransportError(f"cannot reach the mltrail server at {where}: {exc!r}")

    def put(
        self,
        url: str,
        headers: Mapping[str, str],
        source: Readable,
        size: int,
        timeout: float,
        trailer: Callable[[], bytes] | None = None,
    ) -> Answer:
        """Send ``size`` bytes of ``source`` as a PUT body (a :class:`SendableFile` with
        ``sendfile``: the kernel copies from the page cache), then ``trailer()``'s
        :data:`~mltrail.core.artifacts.TRAILER_BYTES` bytes when given, and read the answer,
        waiting up to ``timeout`` for it. Not repeated once anything was sent.

        Raises:
            TransportError: the server was unreachable or broke the connection.
            ValidationError: the source held fewer than ``size`` bytes (field ``size``; the
                connection is closed, so the server drops what it received).
        """
        bound = Deadline(self.deadline)
        conn = self.connect(bound)
        try:
            conn.putrequest("PUT", url, skip_accept_encoding=True)
            length = size + (TRAILER_BYTES if trailer is not None else 0)
            for name, value in {**self.headers, **headers, "Content-Length": str(length)}.items():
                conn.putheader(name, value)
            conn.endheaders()
            self._pace(conn)
            sock = conn.sock
            try:
                sent = send_body(sock, source, size)
                if trailer is not None and sent == size:
                    sock.sendall(trailer())
            except OSError:  # the server may have answered already (an error): read it
                sent = size
            if sent < size:
                raise ValidationError(
                    f"the file held {sent} bytes of the {size} announced (it changed while "
                    "being sent?)",
                    "size",
                )
            self._pace(conn, timeout)  # the answer comes once the server stored it all
            return read_answer(conn.getresponse())
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc, getattr(conn.sock, "bound", None)) from exc
        finally:
            conn.close()


def send_body(sock: socket.socket, source: Readable, size: int) -> int:
    """Send at most ``size`` bytes of ``source``; how many it held up to that."""
    if isinstance(source, SendableFile):
        return sock.sendfile(source.claim_file(), 0, size)
    sent = 0
    while sent < size and (data := source.read(CHUNK_BYTES)):
        block = data[: size - sent]
        sock.sendall(block)
        sent += len(block)
    return sent


def read_answer(response: http.client.HTTPResponse) -> Answer:
    """The whole answer (an error's JSON) for :func:`~.transport.decode`."""
    headers = {name.lower(): value for name, value in response.getheaders()}
    return Answer(response.status, response.read(), headers)
