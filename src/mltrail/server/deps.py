"""What every route shares: the orjson response class and the per-request store."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from mltrail.core.types import LOCAL_USER, Principal, User
from mltrail.core.wire import dump_json
from mltrail.store.base import Store

bearer = HTTPBearer(auto_error=False, description="An API token: `mltrail token create`")


class OrjsonResponse(JSONResponse):
    """JSON via orjson (several times faster than the standard library for large bodies),
    integers beyond 64 bits kept exact: :func:`mltrail.core.wire.dump_json`."""

    def render(self, content: Any) -> bytes:
        return dump_json(content)


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Who the token acts for: a user, or a job (its submitter, limited to the job's project
    and experiment). AuthenticationError (401) when missing, unknown or expired."""
    return authenticate(request, credentials)


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """:func:`current_principal`, callable from any thread (it reads the database)."""
    if not request.app.state.require_auth:
        return Principal(LOCAL_USER)
    token = credentials.credentials if credentials else None
    principal: Principal = request.app.state.store.auth.authenticate_request(token)
    request.state.user = principal.user.name  # named in the access log (server/security.py)
    return principal


# The dependencies below do no I/O, so they are coroutines: FastAPI runs a plain function
# dependency in a worker thread, one thread hop each, which on a loaded machine cost more than
# a one-point MLflow log_metric's work. current_principal reads the database: it stays a thread.
async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> User:
    """The token's user (a job's token: the user who queued the job, never an admin)."""
    return principal.user


async def request_store(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Store:
    """The store as this request's user (or job) sees it (the whole store in embedded mode)."""
    return principal_store(request, principal)


def principal_store(request: Request, principal: Principal) -> Store:
    """The app's store as ``principal`` sees it (the whole store in embedded mode)."""
    store = request.app.state.store
    if not request.app.state.require_auth:
        return store
    return store.as_user(principal.user, principal.grant)  # type: ignore[no-any-return]


def user_store(request: Request, user: User) -> Store:
    """The app's store scoped to ``user`` (the whole store in embedded mode), for any surface
    that authenticated the user its own way (with an API token: never a job's)."""
    store = request.app.state.store
    if not request.app.state.require_auth:
        return store
    return store.as_user(user)


# The token checked in the handler's own worker thread (the MLflow surface's handlers, the SDK's
# point batches): FastAPI runs each plain-function dependency in a worker thread of its own
# before the handler's, so the token check (a database read) and the handler were two thread
# hops per request. A handler wrapped in :func:`authenticating` declares
# :data:`PendingStoreDep` (no I/O: a coroutine taking the request and its bearer credentials)
# and gets the store as the token's user sees it, checked first thing in its own thread. A bad
# token is still answered 401 before the handler reads any field.
@dataclass(frozen=True)
class PendingStore:
    """A request's store before its token is checked."""

    request: Request
    credentials: HTTPAuthorizationCredentials | None

    def resolve(self) -> Store:
        """Check the token (AuthenticationError when bad) and scope the store to its user."""
        return principal_store(self.request, authenticate(self.request, self.credentials))


async def pending_store(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> PendingStore:
    return PendingStore(request, credentials)


PendingStoreDep = Annotated[Store, Depends(pending_store)]
"""What a handler wrapped in :func:`authenticating` declares: it receives the store as the
token's user sees it."""


def authenticating(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` with each :class:`PendingStore` argument resolved before it runs, in the
    same worker thread (a coroutine handler resolves it in one of its own)."""
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            for name, value in kwargs.items():
                if isinstance(value, PendingStore):
                    kwargs[name] = await run_in_threadpool(value.resolve)
            return await endpoint(*args, **kwargs)

        return run_async

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            if isinstance(value, PendingStore):
                kwargs[name] = value.resolve()
        return endpoint(*args, **kwargs)

    return run


MAX_INT64 = 2**63 - 1
# ids beyond 64 bits can name nothing: 422, not a database overflow
ProjectId = Annotated[int, Path(ge=1, le=MAX_INT64)]
ExperimentId = Annotated[int, Path(ge=1, le=MAX_INT64)]

StoreDep = Annotated[Store, Depends(request_store)]
UserDep = Annotated[User, Depends(current_user)]
