"""HTTP/1.1 hygiene for ``mltrail server``: uvicorn's httptools protocol (the llhttp parser) with
a header deadline and a head-size limit, and the answers that must close their connection.

* :class:`GuardedHttpToolsProtocol` (uvicorn ``http=`` option) closes a connection whose request
  head is not complete within :data:`HEADER_TIMEOUT_SECONDS` of its first byte (or of the
  previous answer): slow-header clients cannot hold connections open. A head over
  :data:`MAX_HEAD_BYTES` is a 431 that closes the connection (llhttp sets no limit of its own),
  and so are a chunked body's trailers over it (header lines llhttp would collect unbounded).
  A request the parser refuses (both ``Content-Length`` and ``Transfer-Encoding``, a duplicate
  ``Content-Length``, a bad chunk size...) is a JSON 400 naming llhttp's reason, closing the
  connection. uvicorn's own ``timeout_keep_alive`` bounds idle connections.
* :class:`FramingGuardMiddleware` refuses a request carrying both ``Content-Length`` and
  ``Transfer-Encoding`` (the request-smuggling shape) with a 400 that closes the connection, so
  a request hidden in its body is never answered. llhttp already refuses that request before
  the app sees it; the middleware keeps the app safe under any other server or parser.
* Every accepted connection has Nagle's algorithm off (``TCP_NODELAY``). asyncio sets it only
  on sockets whose protocol number is ``IPPROTO_TCP``; ``mltrail server`` listens on a socket
  from :func:`socket.create_server` (protocol 0), whose connections kept Nagle on, so each small
  answer waited for the client's delayed ACK (about 40 ms: a one-client log-batch loop ran at
  a fifth of its speed).
* A response's head and body go out in one send (:class:`CoalescingTransport`): uvicorn writes
  them separately, which with Nagle off was two TCP segments for every small answer.
* A response may hand the kernel an open file (the ASGI ``http.response.zerocopysend``
  extension, :func:`with_zero_copy_send`): the protocol sends it with ``sendfile``, so an
  artifact download's bytes never pass through Python.
* A body of :data:`LARGE_BODY_BYTES` or more may be read by the app's thread straight from the
  socket (:mod:`.body_tap`, the scope extension ``mltrail.body.tap``): reading stops until that
  body ends, then a fresh parser reads the next request (or the connection closes, when the app
  answered before the body ended). Such a body answered before it was read (a refused upload,
  tapped or not) closes its connection too, rather than being drained.
* Every 413 closes its connection too (``server/errors.py`` sets ``Connection: close``): the
  server stops reading a body over the limit instead of draining it.

httptools instead of h11: h11's pure-Python parser caps a body's rate at about half of a
loopback copy before the app does anything (artifact uploads and downloads) and costs CPU on
every small request; llhttp parses in C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from mltrail.server.body_tap import BODY_ARRIVED, BODY_TAP, BodyTap
from mltrail.server.errors import Receive, Scope, Send, error_response

HEADER_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_HEAD_BYTES = 64 * 1024
LARGE_BODY_BYTES = 1024 * 1024  # a body at least this large is read in reads of this size
ZERO_COPY_SEND = "http.response.zerocopysend"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request head, and
    JSON answers for the requests its parser refuses."""

    _head_deadline: asyncio.TimerHandle | None = None
    _head_pending = True  # bytes that arrive now belong to a request head (or trailers)
    _head_bytes = 0  # received since that head began (an upper bound: a chunk may hold more)
    _body_seen = 0  # body bytes of the current request the parser passed on
    _tap: BodyTap | None = None  # the current request's body, read by the app from the socket

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._socket_transport = transport
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # whatever made the listening socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._head_pending:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # a raw non-ASCII byte in the URL too
            self._refuse(400, f"malformed HTTP request: {exc}", _refused_part(str(exc)))
            return
        except httptools.HttpParserUpgrade:  # as uvicorn's own protocol does
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_pending and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                431, f"the request head (or trailers) is over {MAX_HEAD_BYTES // 1024} KiB"
            )

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._disarm_head_deadline()  # a whole head arrived: the app gets the request
        previous = self.cycle
        self._body_seen, self._tap = 0, None
        large = self._declared_length() >= LARGE_BODY_BYTES
        if isinstance(self.loop, asyncio.BaseEventLoop):  # its sendfile (not uvloop's loop)
            self.scope["extensions"] = {ZERO_COPY_SEND: {}}
            if large:
                self.scope["extensions"][BODY_TAP] = {"open": self._open_tap}
        super().on_headers_complete()
        if large:
            self._set_read_size(LARGE_BODY_BYTES)
        cycle = self.cycle
        if cycle is not previous and cycle is not None:  # the app has not run yet
            cycle.send = with_zero_copy_send(cycle)  # type: ignore[method-assign,assignment]
            if "extensions" in self.scope:  # its whole body in: no wait to time (errors.py)
                self.scope["extensions"][BODY_ARRIVED] = {"test": lambda: not cycle.more_body}

    def on_chunk_header(self) -> None:
        """After a chunk's size line come its data or, after the last one, trailers: header
        lines that llhttp collects without bound, so they count as a head until data arrives."""
        self._head_pending, self._head_bytes = True, 0

    def on_body(self, body: bytes) -> None:
        """uvicorn's, except that the first piece since the app's last receive is kept as the
        bytes object it is: the receive's ``bytes()`` of it is then the same object, where the
        bytearray's append and ``bytes()`` made two copies of every upload's bytes."""
        self._head_pending = False
        self._body_seen += len(body)
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        if not cycle.body:
            cycle.body = body  # type: ignore[assignment]
        else:
            if isinstance(cycle.body, bytes):
                cycle.body = bytearray(cycle.body)  # a second piece: gathered as uvicorn does
            cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._set_read_size(None)
        self._head_pending, self._head_bytes = True, 0  # what follows is the next head

    def on_response_complete(self) -> None:
        # the whole answer leaves now, not at the loop's next turn: the app's remaining work
        # (the middleware's bookkeeping, the access log's line) comes after it, not before
        self.transport.flush()  # type: ignore[attr-defined]
        tap = self._tap
        if tap is not None:  # answered before its body ended: the connection cannot go on
            self.tap_ended(tap, complete=not tap.remaining and not tap.broken)
        elif self._large_body_unread():
            self.transport.close()  # rather than drain it (a refused upload's gigabytes)
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request's head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _open_tap(self) -> BodyTap | None:
        """Hand the rest of the current request's body to the app (see :mod:`.body_tap`):
        reading stops until :meth:`tap_ended`. None once the app received any of the body, or
        when the answer was sent or the connection lost."""
        cycle = self.cycle
        sock = self._socket_transport.get_extra_info("socket")
        if cycle is None or cycle.response_complete or cycle.disconnected or sock is None:
            return None
        if self._tap is not None or self._body_seen > len(cycle.body):
            return None  # the app took some of the body already (or a tap)
        remaining = self._declared_length() - self._body_seen if cycle.more_body else 0
        received = bytes(cycle.body)
        cycle.body = bytearray()
        if cycle.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as receive() would
            cycle.waiting_for_100_continue = False
        if remaining:
            self._socket_transport.pause_reading()
            # uvicorn's flow control may not resume it (a receive() would, were it paused)
            self.flow.read_paused = False
        self._tap = BodyTap(self, sock, received, remaining)
        return self._tap

    def tap_ended(self, tap: BodyTap, complete: bool) -> None:
        """The tapped body was read to its end (``complete``: the connection reads the next
        request with a fresh parser) or was not (it is closed). On the event loop."""
        if tap is not self._tap:
            return  # told already
        self._tap = None
        tap.stop()
        if not complete or self.transport.is_closing():
            self.transport.close()
            return
        if tap.remaining == 0 and self.cycle is not None and self.cycle.more_body:
            self.parser = httptools.HttpRequestParser(self)  # the old one expects the body
            self.on_message_complete()
        self._socket_transport.resume_reading()

    def _large_body_unread(self) -> bool:
        """Whether the current request's body, of :data:`LARGE_BODY_BYTES` or more, has not
        all arrived (the app answered without reading it: a refused upload)."""
        cycle = self.cycle
        return cycle is not None and cycle.more_body and self._declared_length() >= LARGE_BODY_BYTES

    def _declared_length(self) -> int:
        for name, value in self.headers:
            if name == b"content-length":
                return int(value) if value.isdigit() else 0
        return 0

    def _set_read_size(self, size: int | None) -> None:
        """Read the socket ``size`` bytes at a time (None: asyncio's own 256 KiB). An artifact
        upload read 256 KiB at a time was about 4,000 trips per GiB through the event loop,
        httptools, uvicorn's flow control and the ASGI receive; 1 MiB reads make a quarter."""
        transport = self._socket_transport
        if size is None:
            transport.__dict__.pop("max_size", None)  # the class's value again
        elif hasattr(transport, "max_size"):  # asyncio's selector transport (not uvloop's)
            transport.max_size = size

    def _refuse(self, status: int, message: str, field: str = "headers") -> None:
        """Answer ``status`` with the API's JSON error and close: the parser cannot go on."""
        answer = error_response(status, "validation_error", message, field)
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in answer.raw_headers]
        self.transport.write(b"".join([*head, b"connection: close\r\n\r\n", answer.body]))
        self.transport.close()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(HEADER_TIMEOUT_SECONDS, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


def _refused_part(reason: str) -> str:
    """The field llhttp's reason names: ``"Invalid char in url query"`` is the URL's."""
    return "url" if " url" in reason.lower() else "headers"


COALESCE_BYTES = 64 * 1024


class CoalescingTransport:
    """A connection's transport whose small writes of one event-loop step go out as one send.

    uvicorn writes a response's head and its body with a write each: with Nagle off, two TCP
    segments, two sends for the server and two receives for the client, for every small
    answer (a one-point ``log_metric``'s ``{}``). Writes are gathered until the response is
    complete (the protocol flushes then), the loop's next turn (the app sends head and body
    without yielding in between) or until :data:`COALESCE_BYTES` are pending; a write of that
    size or more goes out by itself, after what is pending, never copied into a joined one.
    Anything else is the wrapped transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        self._flush_scheduled = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        if len(data) >= COALESCE_BYTES:
            # a large write goes out as it is, after what is pending: joined to the head, a
            # series answer of 50,000 points (1.6 MB) was copied whole and held twice at once
            self.flush()
            if not self._transport.is_closing():
                self._transport.write(data)
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size >= COALESCE_BYTES:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Hand what is pending to the wrapped transport (dropped once it is closing)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()
        self._transport.set_protocol(protocol)

    async def sendfile(self, file: Any, offset: int, count: int) -> int:
        """Send ``count`` bytes of ``file`` from ``offset`` after what is pending (the
        response's head); the bytes sent."""
        self.flush()
        return await self._loop.sendfile(self._transport, file, offset, count)


def with_zero_copy_send(cycle: RequestResponseCycle) -> Callable[[Any], Coroutine[Any, Any, None]]:
    """``cycle.send`` that also takes ``http.response.zerocopysend`` (``file``, ``offset``,
    ``count``, ``more_body``): the file goes out with ``sendfile`` (the kernel copies it from
    the page cache to the socket; a page not cached yet is read from disk on the event loop, as
    nginx does without its thread pool). A HEAD request's answer gets no body, as uvicorn
    does; an answer without a Content-Length (chunked framing) cannot take a file."""
    plain: Callable[[Any], Awaitable[None]] = cycle.send

    async def send(message: Any) -> None:
        if message["type"] != ZERO_COPY_SEND:
            await plain(message)
            return
        more = {"more_body": message.get("more_body", False)}
        if (
            cycle.disconnected
            or not cycle.response_started
            or cycle.response_complete
            or cycle.scope["method"] == "HEAD"
        ):
            await plain({"type": "http.response.body", "body": b"", **more})  # uvicorn's rules
            return
        file = message["file"]
        offset = message.get("offset") or 0
        count = message.get("count")
        if count is None:
            count = os.fstat(file.fileno()).st_size - offset
        if count == 0:  # an empty file (loop.sendfile refuses a count of 0)
            await plain({"type": "http.response.body", "body": b"", **more})
            return
        if cycle.chunked_encoding:
            raise RuntimeError("zerocopysend needs a response with a Content-Length")
        if count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        if cycle.flow.write_paused:
            await cycle.flow.drain()
        if cycle.transport.is_closing():  # the client went away before the file
            cycle.disconnected = True
            return
        try:
            sent = await cycle.transport.sendfile(file, offset, count)  # type: ignore[attr-defined]
        except OSError:  # the client went away: as uvicorn's own send, nothing to raise
            cycle.disconnected = True
            cycle.transport.close()
            return
        if sent != count:  # the file was shorter: the answer's framing cannot be kept
            cycle.transport.close()
            raise RuntimeError(f"sent {sent} of the file's {count} bytes")
        cycle.expected_content_length -= count
        await plain({"type": "http.response.body", "body": b"", **more})

    return send


def uvicorn_options() -> dict[str, Any]:
    """The uvicorn settings ``mltrail server`` runs with (one process or ``--workers``)."""
    return {"http": GuardedHttpToolsProtocol, "timeout_keep_alive": KEEP_ALIVE_SECONDS}


class FramingGuardMiddleware:
    """400 (closing the connection) for a request with both Content-Length and
    Transfer-Encoding: which one frames the body is exactly what smuggling exploits."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = {bytes(k).lower() for k, _ in scope.get("headers") or ()}
            if b"content-length" in names and b"transfer-encoding" in names:
                answer = error_response(
                    400,
                    "validation_error",
                    "a request may not carry both Content-Length and Transfer-Encoding",
                    "headers",
                )
                answer.headers["Connection"] = "close"
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
