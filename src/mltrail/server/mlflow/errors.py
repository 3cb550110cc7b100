"""The MLflow surface's responses: protobuf-style JSON and MLflow's error shape.

The MLflow client raises ``MlflowException`` / ``RestException`` from
``{"error_code": ..., "message": ...}`` and retries 429 and 5xx answers, so every client error is
answered in that shape with a 4xx status (never a retried 5xx for bad input), and the message names
the field at fault, as mltrail's own errors do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mltrail.core.errors import MltrailError
from mltrail.server.deps import PendingStore, authenticating, bearer, pending_store
from mltrail.server.errors import SurfaceRoute, known_error, validation_field
from mltrail.server.mlflow.messages import read_message
from mltrail.store.waiting import WouldWait, without_waiting

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
    response = mlflow_error(code, message, status)
    if status == 503:
        response.headers["Retry-After"] = "1"  # a busy database: worth a retry, as on /api/v1
    return response


class MlflowRoute(SurfaceRoute):
    """A route answering mltrail errors and request validation in MLflow's error shape.

    Each handler checks the request's token in its own worker thread first
    (:func:`~mltrail.server.deps.authenticating`). Handlers return plain dicts that :class:`MlflowJSONResponse` renders as they are: no
    response model, whose JSON serialisation would turn NaN metric values into null. Handlers
    of large answers (histories, searches) return the response itself: FastAPI would walk a
    returned dict with ``jsonable_encoder`` first, which costs more than the read (100 ms for
    5,000 points).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["response_model"] = None
        kwargs["response_class"] = MlflowJSONResponse  # whatever router the route is in
        self.direct = not inspect.iscoroutinefunction(endpoint)  # until the dependant says
        super().__init__(path, authenticating(endpoint), **kwargs)

    direct_handler: Callable[[Request], Coroutine[Any, Any, Response]] | None = None
    """The handler of a route taking only the message and the store (else None), which
    ``direct.py`` calls without the routers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """A handler taking only the message and the store is called directly: FastAPI's
        dependency solving and response encoding cost a third of a one-point log_metric's
        server time, for two arguments that need neither."""
        names = _direct_arguments(self.dependant) if self.direct else None
        if names is None or self.dependant.call is None:
            return super().get_route_handler()
        self.direct_handler = _direct_handler(self.dependant.call, names)
        return self.direct_handler

    def mltrail_error(self, exc: MltrailError) -> Response:
        return error_of(exc)

    def validation_error(self, exc: RequestValidationError) -> Response:
        return _validation_error(exc)


def _direct_arguments(dependant: Dependant) -> dict[str, bool] | None:
    """``{name: is the store}`` of a handler whose only parameters are a message and a store
    (:data:`~mltrail.server.mlflow.messages.MessageDep`, ``StoreDep``); None for any other."""
    plain = (dependant.path_params, dependant.query_params, dependant.header_params,
             dependant.cookie_params, dependant.body_params)  # fmt: skip
    if any(plain) or dependant.request_param_name or dependant.response_param_name:
        return None
    found: dict[str, bool] = {}
    for sub in dependant.dependencies:
        if sub.name is None or sub.call not in (read_message, pending_store):
            return None
        found[sub.name] = sub.call is pending_store
    return found


def _direct_handler(
    endpoint: Callable[..., Any], names: dict[str, bool]
) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    """What FastAPI's handler does for such an endpoint, without its machinery: read the
    message, take the bearer credentials, run the endpoint (which checks the token first, see
    :func:`~mltrail.server.deps.authenticating`) in a worker thread, render a dict.

    A :func:`small_write` endpoint with a small body runs on the event loop itself when the
    store can begin its transactions at once (``store/waiting.py``), and in a worker thread
    only when it would wait: the hop to a thread and back cost a one-point log_metric a
    sixth of its server CPU time, and more of its latency on a loaded machine."""
    small_write = getattr(endpoint, SMALL_WRITE, False)

    async def handle(request: Request) -> Response:
        kwargs: dict[str, Any] = {}
        for name, is_store in names.items():
            if is_store:
                kwargs[name] = PendingStore(request, await bearer(request))
            else:
                try:
                    kwargs[name] = await read_message(request)
                except MltrailError as exc:  # a body cut short (no error of ours)
                    return error_of(exc)
        try:
            result = _WAITED
            if small_write and len(await request.body()) <= SMALL_WRITE_BYTES:
                result = _run_now(endpoint, kwargs)
            if result is _WAITED:
                result = await run_in_threadpool(endpoint, **kwargs)
        except MltrailError as exc:
            return error_of(exc)
        except Exception as exc:  # a database error standing for bad input or a busy database
            known = known_error(exc)
            if known is None:
                raise
            return error_of(known)
        return result if isinstance(result, Response) else MlflowJSONResponse(result)

    return handle


SMALL_WRITE = "_mltrail_small_write"
SMALL_WRITE_BYTES = 16 * 1024  # a larger body's parse would hold the event loop up
_WAITED = object()


def small_write(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a handler whose request is one small write transaction (after its token check):
    safe to run again in a worker thread when its first try, on the event loop, would have
    waited, because such a try changed nothing (see :func:`_direct_handler`). Its work must
    not grow with what the run holds: log-parameter and set-tag read and rewrite the run's
    whole record (260 ms of CPU with 20,000 params), a stall of every request on the loop."""
    setattr(endpoint, SMALL_WRITE, True)
    return endpoint


def _run_now(endpoint: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """The endpoint's result, run here without waiting on the store; ``_WAITED`` when it
    would have waited (a write lock taken, a PostgreSQL database)."""
    try:
        with without_waiting():
            return endpoint(**kwargs)
    except WouldWait:
        return _WAITED


def _validation_error(exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return mlflow_error("MALFORMED_REQUEST", "body: is not valid JSON", 400)
    field = validation_field(tuple(first.get("loc", ())))
    return mlflow_error("INVALID_PARAMETER_VALUE", f"{field}: {first.get('msg')}", 400)
