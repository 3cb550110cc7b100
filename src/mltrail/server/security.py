"""Request guards and the access log, as plain ASGI middleware.

* :class:`HostGuardMiddleware` refuses requests whose ``Host`` header is not on the allow-list
  (DNS rebinding: a hostile page whose name resolves to 127.0.0.1 must not reach a local server)
  and writes (any method but GET/HEAD/OPTIONS) carrying an ``Origin`` other than the server's
  own (cross-site request forgery from a browser). Both answer 403 with the usual error body.
* :class:`AccessLogMiddleware` writes one JSON object per request to stderr: ``time``,
  ``method``, ``path``, ``status``, ``duration_ms`` and ``user`` (the token's user name, set
  by the auth dependency in ``request.state.user``).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit

import orjson

from mltrail.server.errors import database_unavailable, error_response

DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names every server answers to; ``mltrail server --allowed-host`` adds more."""
ANY_HOST = "*"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARD_BINDS = ("0.0.0.0", "::", "")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def allowed_host_list(bound_host: str | None, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host names a server bound to ``bound_host`` answers to.

    Args:
        bound_host: the ``--host`` the server listens on; a wildcard bind (0.0.0.0, ::) adds
            this machine's host names.
        extra: ``--allowed-host`` values; ``*`` turns the check off.

    Returns:
        Lower-cased host names, without ports, defaults first.
    """
    names = list(DEFAULT_ALLOWED_HOSTS)
    if bound_host in _WILDCARD_BINDS:
        names += [socket.gethostname(), socket.getfqdn()]
    elif bound_host:
        names.append(bound_host)
    names += list(extra)
    cleaned = (_strip_brackets(n.strip().lower()) for n in names)
    return tuple(dict.fromkeys(n for n in cleaned if n))


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def split_host(value: str, scheme: str = "http") -> tuple[str, int]:
    """``"Example.org:8080"`` -> ``("example.org", 8080)``; ``"[::1]"`` -> ``("::1", 80)``."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    else:  # a bare name, or a bare IPv6 address
        name, port_text = value, ""
    port = int(port_text) if port_text.isdigit() else _DEFAULT_PORTS.get(scheme, 80)
    return name, port


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _header_count(scope: Scope, name: bytes) -> int:
    return sum(key.lower() == name for key, _ in scope.get("headers") or ())


class HostGuardMiddleware:
    """403 for an unexpected ``Host`` header and for cross-origin writes.

    Args:
        app: the wrapped ASGI app.
        allowed_hosts: host names (no ports) to answer to; containing ``*`` allows any host.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.any_host = ANY_HOST in allowed_hosts
        self.allowed = frozenset(_strip_brackets(h.lower()) for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            field, message = refusal
            await error_response(403, "permission_denied", message, field)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[str, str] | None:
        """``(field, message)`` when the request must be refused, else None."""
        scheme = str(scope.get("scheme") or "http")
        host = _header(scope, b"host")
        if _header_count(scope, b"host") > 1:  # the guard read the first, a proxy may the last
            return "host", "more than one Host header"
        if host is not None and not self.any_host:
            name, _ = split_host(host, scheme)
            if name not in self.allowed:
                return "host", (
                    f"host {name!r} is not served here (DNS rebinding guard); start the "
                    "server with --allowed-host NAME to allow it"
                )
        origin = _header(scope, b"origin")
        if origin is None or scope.get("method", "GET") in SAFE_METHODS:
            return None
        if host is None or not _same_origin(origin, host, scheme):
            return "origin", f"cross-origin write from {origin!r} refused"
        return None


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.netloc:
        return False  # "null" (sandboxed pages, file://) and garbage
    return split_host(parts.netloc, parts.scheme) == split_host(host, scheme)


class AccessLogMiddleware:
    """One JSON line per HTTP request: time, method, path, status, duration_ms, user.

    Args:
        app: the wrapped ASGI app.
        stream: where lines go; ``sys.stderr`` (looked up per line) by default.
    """

    def __init__(self, app: ASGIApp, stream: TextIO | None = None) -> None:
        self.app = app
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500  # what the client sees when the app raises before answering

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception as exc:
            # answered by the outermost error handler, after this middleware: same mapping
            status = 503 if database_unavailable(exc) else 500
            raise
        finally:
            self.write(scope, status, time.perf_counter() - started, state.get("user"))

    def write(self, scope: Scope, status: int, seconds: float, user: Any) -> None:
        """Write the line for one finished request."""
        line = {
            "time": _utc_millis(time.time()),
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "user": user,
        }
        stream = self.stream or sys.stderr
        stream.write(orjson.dumps(line).decode() + "\n")
        stream.flush()


_SECOND: list[Any] = [None, ""]  # the last second formatted, and its text


def _utc_millis(now: float) -> str:
    """``datetime.now(UTC).isoformat(timespec="milliseconds")``, the second's text formatted
    once per second: a one-point log_metric spent more on the datetime than on its line."""
    second, fraction = divmod(now, 1.0)
    if second != _SECOND[0]:
        text = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")
        _SECOND[:] = [second, text.removesuffix("+00:00")]
    return f"{_SECOND[1]}.{min(int(fraction * 1000), 999):03d}+00:00"


def install_security(
    app: Any, *, allowed_hosts: Sequence[str] | None = None, access_log: bool = False
) -> None:
    """Add the host/origin guard (and the access log, outermost) to a Starlette app.

    Args:
        app: the FastAPI app, after its other middleware was added.
        allowed_hosts: see :func:`allowed_host_list`; :data:`DEFAULT_ALLOWED_HOSTS` when None.
        access_log: write one JSON line per request on stderr.
    """
    app.add_middleware(HostGuardMiddleware, allowed_hosts=allowed_hosts or DEFAULT_ALLOWED_HOSTS)
    if access_log:
        app.add_middleware(AccessLogMiddleware)
