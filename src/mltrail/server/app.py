"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
from collections.abc import AsyncIterator, Callable, Sequence
from types import ModuleType
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from mltrail.config import Settings
from mltrail.core.version import __version__
from mltrail.server import missinglink, mlflow, routes
from mltrail.server.deps import OrjsonResponse
from mltrail.server.direct import DirectCalls
from mltrail.server.errors import BodyLimitMiddleware, http_error, install_error_handlers
from mltrail.server.http_protocol import FramingGuardMiddleware
from mltrail.server.memory import ReleaseMemoryMiddleware
from mltrail.server.polling import STOPPING
from mltrail.server.security import install_security
from mltrail.server.url_guard import UrlDecodingGuardMiddleware
from mltrail.store.base import Store

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_ANONYMOUS_BODY_BYTES = 1024 * 1024  # without a token: login, token refresh, a 401 to come
WORKER_THREADS = 64
REMEMBERED_REQUESTS = 256  # AnsweredBy's memory of the requests the first nouns answer


def create_app(
    settings: Settings,
    store: Store,
    *,
    require_auth: bool = True,
    allowed_hosts: Sequence[str] | None = None,
    access_log: bool = False,
) -> FastAPI:
    """Build the server around a store.

    Args:
        settings: the process settings (read once by the caller).
        store: the unscoped store (a SqlStore); each request works on
            ``store.as_user(user)`` of the token's user.
        require_auth: False for the embedded single-user UI (``mltrail ui``): no token, the
            unscoped store.
        allowed_hosts: Host header names to answer to (DNS rebinding guard, see
            ``server/security.py``); localhost names when None, ``*`` for any.
        access_log: one JSON line per request on stderr (``mltrail server`` sets it).

    Returns:
        The ASGI app, with the REST API under ``/api/v1`` and ``/healthz``.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # sync handlers run in worker threads; long ingests must not starve the others
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        # a server stopped earlier in this process (tests, embedded use) must not end this
        # one's long polls at once: the flag is the process's, so each start clears it
        STOPPING.clear()
        yield

    app = FastAPI(
        title="mltrail",
        version=__version__,
        description="Experiment tracking for machine learning.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        default_response_class=OrjsonResponse,
        lifespan=lifespan,
        **_telemetry_option(),
    )
    app.state.settings = settings
    app.state.store = store
    app.state.require_auth = require_auth
    # innermost: the MLflow calls that need no routing, past FastAPI's layers and the routers
    app.add_middleware(
        DirectCalls, routes=app.router.routes, mounted=_under_mlflow, http_error=http_error
    )
    install_error_handlers(app)  # its last resort for unexpected errors wraps DirectCalls
    first = AnsweredBy()  # the routes of FIRST_NOUNS, once they are included
    # inner: the other nouns and the UI, before the first request none of ``first`` answers
    app.add_middleware(
        IncludeOnFirstUse,
        include=lambda: _include_later_nouns(app),
        skip=lambda scope: _not_rest(scope) or first(scope),
    )
    app.add_middleware(
        IncludeOnFirstUse,
        include=lambda: first.routes.extend(_include_first_nouns(app)),
        skip=_not_rest,
    )
    app.add_middleware(IncludeOnFirstUse, include=lambda: _mount_mlflow(app), skip=_not_mlflow)
    app.add_middleware(
        IncludeOnFirstUse, include=lambda: _mount_missinglink(app), skip=_not_missinglink
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=MAX_BODY_BYTES,
        unlimited=_is_upload,
        anonymous_max_bytes=MAX_ANONYMOUS_BODY_BYTES,
    )
    app.add_middleware(UrlDecodingGuardMiddleware)  # before any route reads a parameter
    app.add_middleware(FramingGuardMiddleware)
    install_security(app, allowed_hosts=allowed_hosts, access_log=access_log)
    app.add_middleware(ReleaseMemoryMiddleware)  # outermost: after a large request is answered

    # no response model, its schema written out instead: a response model makes FastAPI
    # import pydantic.v1 to check it is not one of those (1.5 MiB resident for good, in a
    # server whose clients never reach a route that declares one)
    @app.get("/healthz", tags=["health"], response_model=None, responses=_HEALTHZ_RESPONSES)
    async def healthz() -> dict[str, str]:
        """Liveness, without a token; answered on the event loop, never behind ingest."""
        return {"status": "ok"}

    # Each surface is added by IncludeOnFirstUse on the first request for it: the MLflow
    # surface, MissingLink's, and /api/v1 with the UI for any other path, in two steps: the
    # nouns an SDK run calls first, the others with the UI before the first request none of
    # those answers (the OpenAPI schema is such a request). A server the mltrail SDK alone talks
    # to never imports the other two surfaces, nor the nouns its runs do not call.
    return app


_HEALTHZ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/json": {
                "schema": {
                    "additionalProperties": {"type": "string"},
                    "type": "object",
                    "title": "Response Healthz Healthz Get",
                }
            }
        }
    }
}


# OpenTelemetry's stand-ins for a provider nobody configured (FastAPI's own test, by name)
_UNSET_PROVIDERS = frozenset({"ProxyTracerProvider", "_ProxyMeterProvider", "ProxyLoggerProvider"})


def _telemetry_option() -> dict[str, Any]:
    """FastAPI's native OpenTelemetry (from 0.16x on), each of traces, metrics and logs on
    only when its global provider is configured as the app is built (as
    ``opentelemetry-instrument`` does before the program runs). Left to itself FastAPI asks
    the three providers on every request whether one was configured since (reading the
    environment each time): a twentieth of a one-point MLflow log_metric's work outside the
    store and the token check. Nothing for a FastAPI without it, nor with
    ``FASTAPI_OTEL_AUTO_CONFIGURE=true`` (FastAPI adds OTLP exporters from the environment
    only as the app starts: decided at build, they were never used)."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return {}  # FastAPI configures exporters as the app starts, after it is built: its call
    from opentelemetry import _logs, metrics, trace

    def configured(provider: object) -> bool:
        return type(provider).__name__ not in _UNSET_PROVIDERS

    return {
        "telemetry": {
            "tracing": configured(trace.get_tracer_provider()),
            "metrics": configured(metrics.get_meter_provider()),
            "logs": configured(_logs.get_logger_provider()),
        }
    }


def _mount_mlflow(app: FastAPI) -> None:
    """Mount the MLflow surface, importing its modules (0.7 MB). Mounted ahead of every other
    route: a mount tests its prefix once, where an included router's routes are each tried in
    turn (every /api/v1 route was matched against each MLflow request, a tenth of a one-point
    log_metric's time). Its routes are not in the OpenAPI schema."""
    from mltrail.server.mlflow.routers import mlflow_artifacts_router, mlflow_router

    tracking, artifact_proxy = mlflow_router(), mlflow_artifacts_router()  # before any is added
    mounts = [Mount(prefix, app=tracking) for prefix in mlflow.PREFIXES]
    mounts += [Mount(prefix, app=artifact_proxy) for prefix in mlflow.ARTIFACT_PREFIXES]
    app.router.routes[:0] = mounts


def _mount_missinglink(app: FastAPI) -> None:
    """Mount the original MissingLink client's surface, importing its modules and the ``api``
    layer they render with (1.4 MB). Mounted ahead of the web UI's catch-all paths; its routes
    are not in the OpenAPI schema."""
    from mltrail.server.missinglink.routers import missinglink_router

    app.router.routes.insert(0, Mount(missinglink.PREFIX, app=missinglink_router()))


def _include_first_nouns(app: FastAPI) -> list[BaseRoute]:
    """Add the /api/v1 routes of :data:`FIRST_NOUNS`, importing their modules; returns them."""
    # the router built before any is added: a failure (an import) leaves the app unchanged,
    # so the next request's retry adds each route once
    api = _api_router([importlib.import_module(f"{routes.__name__}.{n}") for n in FIRST_NOUNS])
    before = len(app.router.routes)
    app.include_router(api, prefix=API_PREFIX)
    return app.router.routes[before:]


def _include_later_nouns(app: FastAPI) -> None:
    """Add the other /api/v1 routes and the web UI, importing their modules: 1.0 MB resident
    that a server whose clients are SDK runs would hold for nothing (with FastAPI's state for
    matching them, its peak RSS during the benchmark's ingest was 1.3 MiB higher: 93.4-94.7
    MiB against 92.1-93.2, 6 rounds)."""
    from mltrail.server.ui import ui_router

    api = _api_router([importlib.import_module(f"{routes.__name__}.{n}") for n in LATER_NOUNS])
    app.include_router(api, prefix=API_PREFIX)
    # the web UI comes last, so the API routes above take precedence over its catch-all paths
    app.include_router(ui_router)


class AnsweredBy:
    """Whether one of ``routes`` answers a request (its path and method). The requests found
    answered are remembered (up to :data:`REMEMBERED_REQUESTS`, then forgotten all at once):
    an SDK run calls the same few paths again and again, and matching each call against the
    routes cost as much as the router's own match, 20 µs for a point batch."""

    def __init__(self) -> None:
        self.routes: list[BaseRoute] = []
        self._answered: set[tuple[str, str, str]] = set()

    def __call__(self, scope: Scope) -> bool:
        request = (scope["type"], scope.get("method", ""), scope["path"])
        if request in self._answered:
            return True
        if not any(route.matches(scope)[0] is Match.FULL for route in self.routes):
            return False
        if len(self._answered) >= REMEMBERED_REQUESTS:
            self._answered.clear()
        self._answered.add(request)
        return True


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def _under_mlflow(path: str) -> bool:
    return _under(path, (*mlflow.PREFIXES, *mlflow.ARTIFACT_PREFIXES))


def _not_mlflow(scope: Scope) -> bool:
    return not _under_mlflow(scope["path"])


def _not_missinglink(scope: Scope) -> bool:
    return not _under(scope["path"], (missinglink.PREFIX,))


def _not_rest(scope: Scope) -> bool:
    """Whether the path is answered by another surface's mount (or the liveness probe) alone."""
    return scope["path"] == "/healthz" or not _not_mlflow(scope) or not _not_missinglink(scope)


class IncludeOnFirstUse:
    """Runs ``include`` once, before the first request whose scope ``skip`` does not accept
    (lifespan events never do); later requests only test a flag. An ``include`` that raises
    is run again by the next such request (the flag is cleared only once it returned).

    The event loop serves one request at a time up to its first await, so the routes are in
    place before any request reaches the router.
    """

    def __init__(
        self, app: ASGIApp, include: Callable[[], object], skip: Callable[[Scope], bool]
    ) -> None:
        self.app = app
        self.include: Callable[[], object] | None = include
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.include is not None
            and scope["type"] in ("http", "websocket")
            and not self.skip(scope)
        ):
            self.include()
            self.include = None
        await self.app(scope, receive, send)


def _is_upload(method: str, path: str) -> bool:
    """Artifact uploads stream past the body limit (the per-file limit applies instead)."""
    return routes.is_upload(method, path) or mlflow.is_upload(method, path)


# The /api/v1 nouns, in the order of their traffic: a request is matched against each route in
# turn, up to its own, so the nouns every run and chart call all the time come first (matching
# the nouns before them cost a chart read a tenth of its server time); no two nouns answer the
# same path and method (test_route_order.py), so their order decides no answer. FIRST_NOUNS
# are the ones an SDK run calls (the project, the experiment and its points, logs, the token's
# user): included on the first /api/v1 request; LATER_NOUNS with the UI on the first request
# that none of the first answers.
FIRST_NOUNS = ("points", "experiments", "identity", "projects", "logs")
LATER_NOUNS = ("users", "external", "weights", "charts", "jobs", "agents", "artifacts")


def _api_router(nouns: Sequence[ModuleType]) -> APIRouter:
    api = APIRouter()
    for noun in nouns:
        api.include_router(noun.router)
    return api
