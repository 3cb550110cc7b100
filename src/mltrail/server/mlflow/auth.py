"""The MLflow surface's token check, in the handler's own worker thread.

FastAPI runs each plain-function dependency in a worker thread of its own before the
handler's: the token check (a database read) and the handler were two thread hops per
request, which on a loaded machine cost a one-point ``log_metric`` more than its work. Here
the dependency only takes the request and its bearer credentials (no I/O: a coroutine), and
:func:`authenticating`, which :class:`~mltrail.server.mlflow.errors.MlflowRoute` wraps every
handler in, checks the token first thing in the handler's thread and hands the handler the
store as the token's user sees it. A bad token is still answered 401 before any field is read.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from mltrail.server.deps import authenticate, bearer, principal_store
from mltrail.store.base import Store


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


StoreDep = Annotated[Store, Depends(pending_store)]
"""What a handler declares: it receives the store as the token's user sees it."""


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
