"""One check of every request's URL before any route reads it: a percent-escape that is not
one (``%G1``, a lone ``%``), one that decodes to bytes that are not UTF-8 (``%FF``,
``%C3%28``) or a raw non-ASCII byte is a 400 naming the query parameter (or the path), never a
different string than the client sent.

uvicorn decodes the path, and Starlette the query string, with ``errors="replace"``: without
this check ``?display_name=%FF`` searched for ``"\\ufffd"``, a path parameter (an agent's id,
an artifact's path) held it too, and Starlette read raw bytes of a query string as latin-1
(llhttp refuses raw non-ASCII bytes before the app runs; the check keeps the app safe under any
other server).

The answer is in the shape of the surface asked: MLflow's ``{"error_code":
"INVALID_PARAMETER_VALUE", "message": ...}`` under its prefixes, the API's error body
everywhere else (MissingLink's client reads that same body). A request with no ``%`` and no
non-ASCII byte in its URL costs two byte scans (and the middleware's call: 0.7 us of CPU).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from mltrail.server import mlflow
from mltrail.server.deps import OrjsonResponse
from mltrail.server.errors import error_response

_NOT_AN_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_MLFLOW_PREFIXES = (*mlflow.PREFIXES, *mlflow.ARTIFACT_PREFIXES)
_SHOWN = 80  # characters of a value quoted in a message


def _decoding_problem(raw: bytes) -> str | None:
    """What is wrong with one percent-encoded component, or None."""
    if not raw.isascii():
        return "has bytes that are not ASCII (percent-encode its UTF-8 bytes)"
    if b"%" not in raw:
        return None
    bad = _NOT_AN_ESCAPE.search(raw)
    if bad is not None:
        escape = raw[bad.start() : bad.start() + 3].decode("ascii")
        return f"has {escape!r}, which is not a percent-escape (send a literal % as %25)"
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw.decode("ascii")
        text = text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
        return f"{text!r} decodes to bytes that are not UTF-8 text ({exc.reason})"
    return None


def query_problem(query: bytes) -> tuple[str, str] | None:
    """``(field, message)`` for the first query parameter whose name or value does not
    decode to UTF-8 text exactly, or None when all do.

    The field is the parameter's name (``"query"`` when a name itself is at fault); the
    message starts with it, as MLflow's and MissingLink's clients show only the message."""
    if (b"%" not in query and query.isascii()) or _decoding_problem(query) is None:
        return None  # UTF-8 is valid as a whole exactly when each part between '&'s is
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        problem = _decoding_problem(name)
        if problem is not None:
            return "query", f"query: a parameter's name {problem}"
        problem = _decoding_problem(value)
        if problem is not None:
            field = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
            return field, f"{field}: the query parameter's value {problem}"
    return None


def path_problem(raw_path: bytes) -> tuple[str, str] | None:
    """``("path", message)`` for the first path segment that does not decode to UTF-8 text
    exactly, or None when all do."""
    if (b"%" not in raw_path and raw_path.isascii()) or _decoding_problem(raw_path) is None:
        return None
    for segment in raw_path.split(b"/"):
        problem = _decoding_problem(segment)
        if problem is not None:
            return "path", f"path: the URL path's segment {problem}"
    return None


class UrlDecodingGuardMiddleware:
    """400 for a request whose query string or path does not decode to UTF-8 text exactly
    (see the module's docstring), before any route, token check or body read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = query_problem(scope.get("query_string") or b"")
            raw_path = scope.get("raw_path")
            if problem is None and raw_path is not None:
                problem = path_problem(raw_path)
            if problem is not None:
                await _refusal(scope["path"], *problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refusal(path: str, field: str, message: str) -> OrjsonResponse:
    if any(path == p or path.startswith(p + "/") for p in _MLFLOW_PREFIXES):
        body = {"error_code": "INVALID_PARAMETER_VALUE", "message": message}
        return OrjsonResponse(body, status_code=400)
    return error_response(400, "validation_error", message, field)
