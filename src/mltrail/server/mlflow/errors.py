"""The MLflow surface's responses: protobuf-style JSON and MLflow's error shape.

The MLflow client raises ``MlflowException`` / ``RestException`` from
``{"error_code": ..., "message": ...}`` and retries 429 and 5xx answers, so every client error is
answered in that shape with a 4xx status (never a retried 5xx for bad input), and the message names
the field at fault, as mltrail's own errors do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mltrail.core.errors import MltrailError
from mltrail.server.errors import SurfaceRoute, validation_field
from mltrail.server.mlflow.auth import authenticating

# mltrail's error kinds as MLflow's error codes (databricks.proto's ErrorCode names) and statuses
_CODES: dict[str, tuple[str, int]] = {
    "validation_error": ("INVALID_PARAMETER_VALUE", 400),
    "not_found": ("RESOURCE_DOES_NOT_EXIST", 404),
    "authentication_error": ("UNAUTHENTICATED", 401),
    "permission_denied": ("PERMISSION_DENIED", 403),
    "conflict": ("INVALID_STATE", 400),
    "experiment_stopped": ("INVALID_STATE", 400),
    "payload_too_large": ("RESOURCE_LIMIT_EXCEEDED", 400),
    "already_exists": ("RESOURCE_ALREADY_EXISTS", 400),
    "transport_error": ("TEMPORARILY_UNAVAILABLE", 503),
}


class MlflowJSONResponse(JSONResponse):
    """JSON by orjson. Metric values reach it as ``shapes.json_float`` made them (non-finite
    ones as protobuf's strings), since orjson would write null for a NaN."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def mlflow_error(code: str, message: str, status: int) -> Response:
    """The one error body the MLflow client reads."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error_code": code, "message": message}
    return MlflowJSONResponse(body, status_code=status, headers=headers)


def error_of(exc: MltrailError) -> Response:
    """An mltrail error in MLflow's shape: the message starts with the field it names."""
    code, status = _CODES.get(exc.kind, ("BAD_REQUEST", 400))
    message = f"{exc.field}: {exc.message}" if exc.field else exc.message
    return mlflow_error(code, message, status)


class MlflowRoute(SurfaceRoute):
    """A route answering mltrail errors and request validation in MLflow's error shape.

    Each handler checks the request's token in its own worker thread first
    (:func:`~mltrail.server.mlflow.auth.authenticating`). Handlers return plain dicts that :class:`MlflowJSONResponse` renders as they are: no
    response model, whose JSON serialisation would turn NaN metric values into null. Handlers
    of large answers (histories, searches) return the response itself: FastAPI would walk a
    returned dict with ``jsonable_encoder`` first, which costs more than the read (100 ms for
    5,000 points).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["response_model"] = None
        super().__init__(path, authenticating(endpoint), **kwargs)

    def mltrail_error(self, exc: MltrailError) -> Response:
        return error_of(exc)

    def validation_error(self, exc: RequestValidationError) -> Response:
        return _validation_error(exc)


def _validation_error(exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return mlflow_error("MALFORMED_REQUEST", "body: is not valid JSON", 400)
    field = validation_field(tuple(first.get("loc", ())))
    return mlflow_error("INVALID_PARAMETER_VALUE", f"{field}: {first.get('msg')}", 400)
