"""Every error becomes ``{"error": {"type", "field", "message"}}`` with the right status.

User errors (MltrailError, request validation, a body over the limit) are 4xx, never 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from mltrail.core.errors import (
    MltrailError,
    PayloadTooLargeError,
    TransportError,
    ValidationError,
)
from mltrail.server import body_tap
from mltrail.server.deps import OrjsonResponse

log = logging.getLogger("mltrail.server")

_HTTP_KINDS = {401: "authentication_error", 404: "not_found", 405: "method_not_allowed"}
_LOCATIONS = ("body", "query", "path", "header", "cookie")
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 for undecodable bodies

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def error_response(
    status_code: int, kind: str, message: str, field: str | None = None
) -> OrjsonResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
    body = {"error": {"type": kind, "field": field, "message": message}}
    return OrjsonResponse(body, status_code=status_code, headers=headers)


def validation_field(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "chunks", 0, "key")`` -> ``"chunks[0].key"``."""
    parts = list(loc[1:] if loc and loc[0] in _LOCATIONS else loc)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or (str(loc[0]) if loc else "body")


async def _mltrail_error(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, MltrailError)
    return error_response(exc.status_code, exc.kind, exc.message, exc.field)


async def _request_validation_error(request: Request, exc: Exception) -> OrjsonResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first: dict[str, Any] = (
        dict(errors[0]) if errors else {"loc": ("body",), "msg": "invalid request"}
    )
    field = validation_field(first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        field, message = "body", f"not valid JSON: {first.get('ctx', {}).get('error', message)}"
    if first.get("type") == "extra_forbidden":  # e.g. a newer client's flag: not dropped
        message = "unknown field: this server does not take it (is the client newer?)"
    return error_response(422, "validation_error", message, field)


async def http_error(request: Request, exc: Exception) -> OrjsonResponse:
    """The answer to an HTTPException (a body over the limit or too slow, a 404, a 405)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 413:
        return _too_large(exc.detail if isinstance(exc, BodyTooLarge) else TOO_LARGE)
    if isinstance(exc, BodyTooSlow):
        return _too_slow(exc.detail)
    if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:  # e.g. not UTF-8: bad input
        return error_response(422, "validation_error", "body is not valid UTF-8 JSON", "body")
    kind = _HTTP_KINDS.get(exc.status_code, "http_error")
    return error_response(exc.status_code, kind, str(exc.detail))


def known_error(exc: BaseException) -> MltrailError | None:
    """The mltrail error a database exception stands for (a value out of range: 422; a
    database busy or unreachable: 503), logged; None for a bug."""
    if out_of_range(exc):  # a number past what a column holds, caught by no parse constructor
        log.warning("value out of range: %s", exc)
        if "cannot contain NUL (0x00)" in str(exc):  # psycopg: PostgreSQL text holds no NUL
            return ValidationError("a text value holds NUL (\\u0000), which is not stored", "body")
        return ValidationError("a number is out of range", "body")
    if database_unavailable(exc):
        log.warning("database unavailable: %s", exc)
        return TransportError("the database is busy or unreachable")
    return None


async def _unexpected_error(request: Request, exc: Exception) -> OrjsonResponse:
    known = known_error(exc)
    if known is None:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "internal server error")
    response = error_response(known.status_code, known.kind, known.message, known.field)
    if isinstance(known, TransportError):
        response.headers["Retry-After"] = "1"  # clients retry; idempotent batches store once
    return response


class AnswerUnexpectedErrors:
    """Answers an exception no handler took (a database error, a bug) itself, when the
    response has not started: Starlette's outermost error middleware would answer it too, but
    then re-raises, and the server closes the connection, so a client's next request on that
    keep-alive connection failed with a reset (every 503 "database busy" cost a reconnect)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:
                raise
            response = await _unexpected_error(Request(scope), exc)
            await response(scope, receive, send)


# SQLAlchemy's classes for a locked SQLite file or a lost/refused PostgreSQL connection,
# matched by name: SQLAlchemy stays in store/sql
_DB_UNAVAILABLE = frozenset({"OperationalError", "InterfaceError", "DisconnectionError"})


def out_of_range(exc: BaseException) -> bool:
    """True for a value the database cannot hold (SQLite's OverflowError, PostgreSQL's
    numeric out of range): bad input that slipped past the parse constructors."""
    if isinstance(exc, OverflowError):
        return True
    return any(
        cls.__module__ == "sqlalchemy.exc" and cls.__name__ == "DataError"
        for cls in type(exc).__mro__
    )


def database_unavailable(exc: BaseException) -> bool:
    """True for a database that is locked, restarting or unreachable: worth a retry (503)."""
    return any(
        cls.__module__ == "sqlalchemy.exc" and cls.__name__ in _DB_UNAVAILABLE
        for cls in type(exc).__mro__
    )


TOO_LARGE = "request body is over the server's limit"
ANONYMOUS_TOO_LARGE = f"{TOO_LARGE} for a request without a token (send Authorization: Bearer)"


def _too_large(message: str = TOO_LARGE) -> OrjsonResponse:
    """The 413 answer; it closes the connection, so the rest of the body is never read."""
    exc = PayloadTooLargeError(message, "body")
    response = error_response(exc.status_code, exc.kind, exc.message, exc.field)
    response.headers["Connection"] = "close"
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the one error body shape."""
    app.add_exception_handler(MltrailError, _mltrail_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, _unexpected_error)  # once a response has started
    # inside every other middleware but the ones added before it (server/app.py)
    app.add_middleware(AnswerUnexpectedErrors)


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class BodyTooSlow(StarletteHTTPException):
    """A body whose sender kept the app waiting past its :class:`~.body_tap.Pace` (a 408)."""

    def __init__(self, message: str) -> None:
        super().__init__(408, message)


def _too_slow(message: str) -> OrjsonResponse:
    """The 408 answer naming the body; it closes the connection (the rest is never read)."""
    response = error_response(408, "validation_error", message, "body")
    response.headers["Connection"] = "close"
    return response


async def paced(receive: Receive, pace: body_tap.Pace) -> Message:
    """``receive()``, waiting for the sender at most its ``pace``'s patience.

    Raises:
        BodyTooSlow: the sender kept the app waiting past it.
    """
    try:
        message = await pace.within(receive())
    except TimeoutError:
        raise BodyTooSlow(str(pace.cut()) or "the body's sender went silent: cut") from None
    pace.record(len(message.get("body", b"")), 0.0)
    return message


class BodyLimitMiddleware:
    """Answer 413 to bodies over ``max_bytes``: declared (Content-Length) or streamed.

    A request without an ``Authorization`` header gets the smaller ``anonymous_max_bytes``:
    what a route answers without a token (login, a MissingLink token refresh) is small, and
    a route that parses its body before its token check (FastAPI reads ``Body()`` parameters
    first) must not make an anonymous client's megabytes cost the server seconds of CPU.
    Until the body has arrived, each receive waits for its sender at most an upload's
    :class:`~.body_tap.Pace`: past it, a 408 naming the body that closes the connection.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the limit.
        unlimited: ``(method, path) -> bool`` for requests that stream their bodies and check
            limits of their own (artifact uploads).
        anonymous_max_bytes: the limit without an ``Authorization`` header (default
            ``max_bytes``).
    """

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        max_bytes: int,
        unlimited: Callable[[str, str], bool] | None = None,
        anonymous_max_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.unlimited = unlimited
        self.anonymous_max_bytes = max_bytes if anonymous_max_bytes is None else anonymous_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.unlimited is not None and self.unlimited(scope["method"], scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        anonymous = b"authorization" not in headers
        limit = self.anonymous_max_bytes if anonymous else self.max_bytes
        refusal = ANONYMOUS_TOO_LARGE if anonymous else TOO_LARGE
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(refusal)(scope, receive, send)
            return
        received = 0
        started = False
        pace = body_tap.Pace()  # as an upload's: a trickled body held its connection for ever
        body_pending = True  # paced until it ends: a long poll may then wait on receive()
        # a body that has all arrived is received at once: no timer to set and cancel (a
        # small request's body comes with its head; the timer was 2% of a one-point log_metric)
        arrived = body_tap.arrived_test(scope)

        async def limited_receive() -> Message:
            nonlocal received, body_pending
            if not body_pending:
                return await receive()
            if arrived is not None and arrived():
                message = await receive()
            else:
                message = await paced(receive, pace)
            body_pending = message["type"] == "http.request" and message.get("more_body", False)
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(refusal)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(refusal)(scope, receive, send)
        except BodyTooSlow as exc:
            if started:
                raise
            await _too_slow(exc.detail)(scope, receive, send)


class SurfaceRoute(APIRoute):
    """A route of a second REST surface (MLflow's, MissingLink's), answering mltrail errors
    and request validation in that surface's own error shape: a subclass says how."""

    def mltrail_error(self, exc: MltrailError) -> Response:
        raise NotImplementedError

    def validation_error(self, exc: RequestValidationError) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except MltrailError as exc:
                return self.mltrail_error(exc)
            except RequestValidationError as exc:
                return self.validation_error(exc)
            except Exception as exc:  # a database error standing for bad input or a busy database
                known = known_error(exc)
                if known is None:
                    raise
                return self.mltrail_error(known)

        return handle
