"""Telling a user that a request failed because the server is older than the client.

A server older than its client does not know a newer client's field (a 422 naming it), route
(a 404 "no route", a 405, or a 422 on a path segment it reads as an id: ``/experiments/compare``
as ``/experiments/{experiment_id}``). Such an answer alone reads as the client's bug; the user
needs the two versions and what to do. :func:`explain_skew` adds them, asking the server's
version once (``GET /identity``) only after such an answer.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from mltrail.core import version
from mltrail.core.errors import MltrailError, NotFoundError, ValidationError

_UNKNOWN_FIELD = ("unknown field", "Extra inputs are not permitted")  # new servers, old ones
_UNKNOWN_ROUTE = ("no route ", "Not Found", "Method Not Allowed")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def unknown_to_server(error: MltrailError, body: Any, params: Mapping[str, Any] | None) -> bool:
    """Whether ``error`` may say the server does not know what was asked: an unknown field,
    an unknown route, or a 422 naming a field the request did not send (a path segment)."""
    if isinstance(error, ValidationError):
        if error.message.startswith(_UNKNOWN_FIELD):
            return True
        name = _FIELD_NAME.match(error.field or "")
        sent = {*(body if isinstance(body, dict) else {}), *(params or {})}
        return name is not None and name.group() not in sent and name.group() != "body"
    if type(error) in (NotFoundError, MltrailError):
        return error.message.startswith(_UNKNOWN_ROUTE)
    return False


def explain_skew(error: MltrailError, server_version: Callable[[], str | None]) -> MltrailError:
    """``error`` with the server's and this client's versions and what to do, when they
    differ (or the server does not say its version); ``error`` itself when they are the same
    (the request is at fault, not the versions)."""
    client = version.__version__
    try:
        server = server_version()
    except Exception:  # the hint is extra: never hide the error behind another one
        server = None  # (an unreachable server, a proxy's sign-in page that is no JSON)
    if server == client:
        return error
    if server is None:
        hint = (
            f"the server did not say its version; it may be older than this client "
            f"(mltrail {client}): upgrade the server to mltrail {client}"
        )
    else:
        hint = (
            f"the server runs mltrail {server} and this client mltrail {client}: the server may "
            f"be too old for this request; upgrade the server to mltrail {client}, or use a "
            f"client of mltrail {server}"
        )
    explained = copy.copy(error)  # its class and attributes (field, ...), a new message
    explained.message = f"{error.message} ({hint})"
    explained.args = (explained.message,)
    return explained
