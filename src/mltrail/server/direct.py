"""Calls whose handler needs no routing machinery, answered straight from a table.

Every request passes FastAPI's layers around the router (its exception middleware and an exit
stack), the app's router trying each route in turn, the mount, the mounted router trying its
routes, and the route's own wrapper (two more exit stacks, an exception wrapper, a Request):
for a one-point MLflow log_metric that was about a sixteenth of its in-process server work
(instructions counted by callgrind). A mounted route that has a direct handler (the MLflow
surface's ``MlflowRoute`` for a handler taking only the message and the store, see
``mlflow/errors.py``) needs none of it: its handler reads the body, checks the token and
answers every mltrail error in the surface's shape itself. :class:`DirectCalls` answers such a
call with that handler when the method and the whole path are one of the table's (built from the
mounted routes on the first request under a mount that has them), and hands every other
request on unchanged.

A table entry is exactly the route the routers would have chosen: a path without parameters,
whose first fully matching route (the app's, then the mount's) is that route. The middleware sits
inside ``AnswerUnexpectedErrors``, so an unexpected exception is answered as before; the guards
(host, framing, URL, body limit), the access log and the memory release stay outside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Mount

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Request], Awaitable[Any]]
DIRECT_HANDLER = "direct_handler"
"""The attribute of a route holding its direct handler (None for any other route)."""


class DirectCalls:
    """Answers a request whose ``(method, path)`` is in the direct table with that route's
    handler; anything else goes on to ``app``.

    Args:
        app: the wrapped ASGI app (the router, behind FastAPI's layers).
        routes: the app's routes, read once the first request ``mounted`` accepts arrives
            (the surface's mount is in place by then).
        mounted: whether a path is under a mount with direct handlers (mounted by the time
            such a request gets here).
        http_error: the app's answer to an HTTPException a handler raises (a body over the
            limit or too slow, raised by the body limit's receive: ``AnswerUnexpectedErrors``
            outside this middleware would make it a 500).
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        mounted: Callable[[str], bool],
        http_error: Callable[[Request, Exception], Awaitable[Any]],
    ) -> None:
        self.app = app
        self.routes = routes
        self.mounted = mounted
        self.http_error = http_error
        self.table: dict[tuple[str, str], Handler] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            table = self.table
            if table is None and self.mounted(scope["path"]):
                table = self.table = direct_table(self.routes)
            handler = table.get((scope["method"], scope["path"])) if table else None
            if handler is not None:
                request = Request(scope, receive, send)
                try:
                    response = await handler(request)
                except HTTPException as exc:  # as the route's own wrapper had it answered
                    response = await self.http_error(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def direct_table(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], Handler]:
    """``{(method, path): handler}`` of every route with a direct handler that the routers
    would choose for that method and path (see the module's docstring)."""
    table: dict[tuple[str, str], Handler] = {}
    for mount in routes:
        if not isinstance(mount, Mount):
            continue
        for route in mount.routes:
            handler = getattr(route, DIRECT_HANDLER, None)
            if handler is None or getattr(route, "param_convertors", True):
                continue
            path = mount.path + route.path  # type: ignore[attr-defined]
            for method in route.methods or ():  # type: ignore[attr-defined]
                outer = {"type": "http", "method": method, "path": path, "root_path": ""}
                inner = {**outer, "root_path": mount.path}
                if (method, path) not in table and (
                    _first_match(routes, outer) is mount
                    and _first_match(mount.routes, inner) is route
                ):
                    table[(method, path)] = handler
    return table


def _first_match(routes: Sequence[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route a Starlette router hands ``scope`` to: the first that matches fully."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None
