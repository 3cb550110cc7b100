"""Deadlines on HttpStore's requests, so a server that answers one byte per read timeout cannot
hold a call (an SDK flush, a CLI command) for hours.

httpx's timeouts are per socket operation: a read that gets one byte starts the next read's
timeout afresh. A :class:`Bound` says how long the network calls of one request may still take,
and every connect, read and write of the request is given at most that (the lesser of its own
timeout and what the bound leaves), so the request ends when the bound does, within the socket
call in progress:

- :class:`Deadline`: a whole Store call (every attempt of it, connect, send and the whole
  answer) ends within ``seconds``. Ordinary requests are small; a slow one is a fault.
- :class:`Progress`: a stream (an artifact's bytes, either way) has no deadline, it may take
  hours at a good rate, but once bytes move it must move at least :data:`FLOOR_BYTES` in every
  ``window`` seconds (the deadline); silence alone is left to the per-read timeout.

The bound of the request in progress is the calling thread's (:func:`bounded`): httpx's
sockets are reached through :func:`bind_client`, which wraps httpcore's network backend so
its streams read it; the standard-library connections of :mod:`.direct` use
:class:`BoundSocket`, which carries its own bound.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

from mltrail.core.errors import TransportError

DEFAULT_DEADLINE = 120.0
"""Seconds one HttpStore call may take, every attempt included (``MLTRAIL_REQUEST_DEADLINE``)."""
FLOOR_BYTES = 64 * 1024
"""What a stream must move in every deadline window once it moves (about 0.5 KiB/s at the
default deadline): a stalled or dripping stream fails, a slow link does not."""
_PIECE = 64 * 1024  # writes are cut in pieces of this size, so each is bounded afresh
_current = threading.local()


class Bound:
    """How long the network calls of one request may still take (see the module's text)."""

    seconds: float

    def remaining(self) -> float | None:
        """Seconds left, None for no limit (the socket call's own timeout applies)."""
        raise NotImplementedError

    def moved(self, count: int) -> None:
        """``count`` bytes were read or written."""

    @property
    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def explain(self) -> str:
        """What ran out, for an error message."""
        raise NotImplementedError


class Deadline(Bound):
    """Everything done by ``seconds`` from now."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.until = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.until - time.monotonic()

    def explain(self) -> str:
        return (
            f"no whole answer within the request deadline of {self.seconds:g} s "
            "(MLTRAIL_REQUEST_DEADLINE)"
        )


class Progress(Bound):
    """At least ``floor`` bytes in every ``seconds`` once bytes move (a stream's bound)."""

    def __init__(self, seconds: float, floor: int = FLOOR_BYTES) -> None:
        self.seconds, self.floor = seconds, floor
        self._opened: float | None = None  # monotonic time of the window's first bytes
        self._count = 0

    def remaining(self) -> float | None:
        if self._opened is None:
            return None
        return self._opened + self.seconds - time.monotonic()

    def moved(self, count: int) -> None:
        if self._opened is None:
            if not count:
                return
            self._opened = time.monotonic()
        self._count += count
        if self._count >= self.floor:
            self.rest()

    def rest(self) -> None:
        """Close the window: the bytes so far met the floor, or a side finished (a sent body
        whose answer comes after the server stored it all)."""
        self._opened, self._count = None, 0

    def explain(self) -> str:
        return (
            f"the transfer moved less than {self.floor // 1024} KiB in {self.seconds:g} s "
            "(MLTRAIL_REQUEST_DEADLINE)"
        )


@contextlib.contextmanager
def bounded(bound: Bound | None) -> Iterator[Bound | None]:
    """Make ``bound`` the calling thread's for the block (the previous one after it)."""
    previous = getattr(_current, "bound", None)
    _current.bound = bound
    try:
        yield bound
    finally:
        _current.bound = previous


def clamp(bound: Bound | None, timeout: float | None) -> float | None:
    """``timeout`` cut to what ``bound`` leaves; ``TimeoutError`` when nothing is left."""
    left = None if bound is None else bound.remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise TimeoutError(bound.explain() if bound is not None else "timed out")
    return left if timeout is None else min(timeout, left)


def outlasts(bound: Bound | None, pause: float) -> bool:
    """Whether a wait of ``pause`` seconds, then another attempt, would outlast ``bound``."""
    left = None if bound is None else bound.remaining()
    return left is not None and pause >= left


def _clamped(timeout: float | None, failure: type[Exception]) -> float | None:
    try:
        return clamp(getattr(_current, "bound", None), timeout)
    except TimeoutError as exc:
        raise failure(str(exc)) from None


class _BoundStream(httpcore.NetworkStream):
    """An httpcore stream whose reads and writes end by the thread's bound."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, _clamped(timeout, httpcore.ReadTimeout))
        bound = getattr(_current, "bound", None)
        if bound is not None:
            bound.moved(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        bound = getattr(_current, "bound", None)
        if bound is None:
            self._inner.write(buffer, timeout)
            return
        for start in range(0, len(buffer), _PIECE):
            piece = buffer[start : start + _PIECE] if len(buffer) > _PIECE else buffer
            self._inner.write(piece, _clamped(timeout, httpcore.WriteTimeout))
            bound.moved(len(piece))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> httpcore.NetworkStream:  # fmt: skip
        stream = self._inner.start_tls(
            ssl_context, server_hostname, _clamped(timeout, httpcore.ConnectTimeout)
        )
        return _BoundStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _BoundBackend(httpcore.NetworkBackend):
    """httpcore's network backend with every stream it opens bound (:class:`_BoundStream`)."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:  # fmt: skip
        wait = _clamped(timeout, httpcore.ConnectTimeout)
        return _BoundStream(
            self._inner.connect_tcp(host, port, wait, local_address, socket_options)
        )

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> httpcore.NetworkStream:  # fmt: skip
        wait = _clamped(timeout, httpcore.ConnectTimeout)
        return _BoundStream(self._inner.connect_unix_socket(path, wait, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bind_client(client: httpx.Client) -> httpx.Client:
    """``client`` with its connection pools (its transport's and the proxies' from the
    environment) opening bound streams; an injected transport of another kind (tests' in-process
    app) is left as it is. Returns ``client``."""
    transports = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _BoundBackend):
            pool._network_backend = _BoundBackend(backend)  # type: ignore[union-attr]
    return client


def is_bound(client: httpx.Client) -> bool:
    """Whether ``client``'s own transport opens bound streams (what tests check)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    return isinstance(getattr(pool, "_network_backend", None), _BoundBackend)


def paced(chunks: Iterator[bytes], bound: Progress, sender: str) -> Iterator[bytes]:
    """A streamed answer's chunks, each read under ``bound`` (on whichever thread reads it);
    its running out is a :class:`TransportError` naming the ``sender``."""
    while True:
        try:
            with bounded(bound):
                chunk = next(chunks, None)
        except httpx.TimeoutException as exc:
            if not bound.expired:
                raise
            raise TransportError(f"{sender} stalled: {bound.explain()}") from exc
        if chunk is None:
            return
        yield chunk


class BoundSocket(socket.socket):
    """A socket whose receives and sends end by its own :attr:`bound` (for ``http.client``,
    whose response reads come through :meth:`recv_into`); :attr:`limit` is each call's own
    timeout."""

    bound: Bound | None = None
    limit: float | None = None

    @classmethod
    def adopt(cls, sock: socket.socket, bound: Bound | None, limit: float | None) -> BoundSocket:
        """``sock``'s connection as a BoundSocket (``sock`` is detached)."""
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.bound, adopted.limit = bound, limit
        adopted.settimeout(limit)
        return adopted

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self.settimeout(clamp(self.bound, self.limit))
        count = super().recv_into(buffer, nbytes, flags)
        if self.bound is not None:
            self.bound.moved(count)
        return count

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _PIECE):
            piece = view[start : start + _PIECE]
            self.settimeout(clamp(self.bound, self.limit))
            super().sendall(piece, flags)
            if self.bound is not None:
                self.bound.moved(len(piece))

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Sent in pieces of 8 MiB, each bounded afresh (the kernel copies; no Python loop)."""
        assert count is not None, "BoundSocket.sendfile takes a count"
        sent = 0
        while sent < count:
            self.settimeout(clamp(self.bound, self.limit))
            done = super().sendfile(file, offset + sent, min(count - sent, 8 * 1024 * 1024))
            if not done:
                break
            sent += done
            if self.bound is not None:
                self.bound.moved(done)
        return sent
