"""What every route shares: the orjson response class and the per-request store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


MAX_INT64 = 2**63 - 1
# ids beyond 64 bits can name nothing: 422, not a database overflow
ProjectId = Annotated[int, Path(ge=1, le=MAX_INT64)]
ExperimentId = Annotated[int, Path(ge=1, le=MAX_INT64)]

StoreDep = Annotated[Store, Depends(request_store)]
UserDep = Annotated[User, Depends(current_user)]
