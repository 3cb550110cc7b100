"""HTTP/1.1 hygiene for ``mltrail server``: uvicorn's h11 protocol with a header deadline, and
the answers that must close their connection.

* :class:`GuardedH11Protocol` (uvicorn ``http=`` option) closes a connection whose request
  head is not complete within :data:`HEADER_TIMEOUT_SECONDS` of its first byte (or of the
  previous answer): slow-header clients cannot hold connections open. uvicorn's own
  ``timeout_keep_alive`` bounds idle connections, ``h11_max_incomplete_event_size`` the head's
  size.
* :class:`FramingGuardMiddleware` refuses a request carrying both ``Content-Length`` and
  ``Transfer-Encoding`` (the request-smuggling shape) with a 400 that closes the connection, so
  a request hidden in its body is never answered.
* Every 413 closes its connection too (``server/errors.py`` sets ``Connection: close``): the
  server stops reading a body over the limit instead of draining it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from mltrail.server.errors import Receive, Scope, Send, error_response

HEADER_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_HEAD_BYTES = 64 * 1024


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head arrives too slowly."""

    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm_head_deadline()  # a whole head arrived: the app has the request

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()  # the next request's head has the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

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


def uvicorn_options() -> dict[str, Any]:
    """The uvicorn settings ``mltrail server`` runs with."""
    return {
        "http": GuardedH11Protocol,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }


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
