"""The MissingLink surface's responses: its JSON (NaN allowed) and its error handling.

The client reads ``{"error": {"message": ...}}`` and shows only the message, so the message names
the field. Its GET calls retry every status but 400, 403 and 404 forever, so every other client
error (422 validation, 409 conflict, 413 too large) is answered as 400 here: a clear message once,
never an endless retry.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mltrail.core.errors import MltrailError
from mltrail.server.errors import SurfaceRoute, validation_field

_FINAL_STATUSES = frozenset({400, 401, 403, 404, 410})


class MissingLinkJSONResponse(JSONResponse):
    """JSON as the client's ``requests`` decodes it: NaN and Infinity literals, any integer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(status_code: int, kind: str, message: str, field: str | None) -> Response:
    """The one error body; statuses the client would retry forever become 400."""
    status = status_code if status_code in _FINAL_STATUSES or status_code >= 500 else 400
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": {"type": kind, "field": field, "message": message}}
    return MissingLinkJSONResponse(body, status_code=status, headers=headers)


class MissingLinkRoute(SurfaceRoute):
    """A route answering mltrail errors and request validation in the client's error shape."""

    def mltrail_error(self, exc: MltrailError) -> Response:
        return error_response(exc.status_code, exc.kind, str(exc), exc.field)

    def validation_error(self, exc: RequestValidationError) -> Response:
        return _validation_error(exc)


def _validation_error(exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
    field = validation_field(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return error_response(400, "validation_error", "body: is not valid JSON", "body")
    return error_response(400, "validation_error", f"{field}: {first.get('msg')}", field)
