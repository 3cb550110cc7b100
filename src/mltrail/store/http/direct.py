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
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from mltrail.core.artifacts import TRAILER_BYTES
from mltrail.core.errors import TransportError, ValidationError
from mltrail.store.artifacts import CHUNK_BYTES, Readable, SendableFile
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
    """

    def __init__(
        self,
        host: str,
        port: int,
        prefix: str,
        headers: Mapping[str, str],
        timeout: float,
        policy: RetryPolicy,
    ) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.headers = dict(headers)
        self.timeout = timeout
        self.policy = policy

    def url(self, path: str, params: Mapping[str, object] | None = None) -> str:
        """The request target of API ``path`` (already %-quoted) with ``params``."""
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        return self.prefix + path + (f"?{query}" if query else "")

    def connect(self) -> http.client.HTTPConnection:
        """A connected connection; connection faults retried as the policy allows (nothing was
        sent yet).

        Raises:
            TransportError: the server stayed unreachable.
        """
        for attempt in range(self.policy.retries + 1):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.connect()
                return conn
            except OSError as exc:
                conn.close()
                if attempt == self.policy.retries:
                    raise self._unreachable(exc) from exc
            self.policy.sleep(self.policy.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, url: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a GET and read its answer's head (retried on faults and 429/502/503/504, as
        :meth:`RetryPolicy.pause` says: a read may be repeated); the caller reads the body and
        closes the connection.

        Raises:
            TransportError: the server stayed unreachable or broke the connection.
        """
        waited = 0.0
        for attempt in range(self.policy.retries + 1):
            last = attempt == self.policy.retries
            pause = self.policy.delay(attempt)
            conn = self.connect()
            try:
                conn.request("GET", url, headers=self.headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if last:
                    raise self._unreachable(exc) from exc
            else:
                if last or response.status not in RETRY_STATUSES:
                    return conn, response
                header = response.getheader("Retry-After")
                asked = self.policy.pause(attempt, waited, response.status, header)
                if asked is None:  # it asks for longer than the patience left
                    return conn, response
                pause = asked
                conn.close()
            self.policy.sleep(pause)
            waited += pause
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, exc: BaseException) -> TransportError:
        return TransportError(
            f"cannot reach the mltrail server at {self.host}:{self.port}: {exc!r}"
        )

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
        conn = self.connect()
        try:
            conn.putrequest("PUT", url, skip_accept_encoding=True)
            length = size + (TRAILER_BYTES if trailer is not None else 0)
            for name, value in {**self.headers, **headers, "Content-Length": str(length)}.items():
                conn.putheader(name, value)
            conn.endheaders()
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
            sock.settimeout(timeout)
            return read_answer(conn.getresponse())
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from exc
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
