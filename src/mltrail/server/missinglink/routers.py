"""The original MissingLink client's routes, mounted under ``PREFIX`` (see the package's
docstring) by the app on the first request for them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.server.missinglink import experiments, logs, tokens
from mltrail.server.missinglink.errors import MissingLinkJSONResponse, MissingLinkRoute

_users = APIRouter(route_class=MissingLinkRoute)


@_users.post("/users/refresh_token")
def refresh_token(request: Request, body: Annotated[Any, Body()] = None) -> dict[str, str]:
    """Exchange an mltrail API token (the config's ``refresh_token``) for an id_token."""
    token = body.get("refresh_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ValidationError("is required: an mltrail API token", "refresh_token")
    return {"id_token": tokens.mint(request.app.state.store.auth.find_token(token))}


_unserved = APIRouter(route_class=MissingLinkRoute)


@_unserved.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_served(path: str) -> None:
    """Any other MissingLink path: a JSON 404 the client can show (not the web UI's page)."""
    raise NotFoundError(
        f"the MissingLink call {path!r} is not served by mltrail (see docs/missinglink.md)", "path"
    )


def missinglink_router() -> APIRouter:
    """Every MissingLink route, to include under :data:`PREFIX` (kept out of the OpenAPI)."""
    router = APIRouter(
        include_in_schema=False,
        default_response_class=MissingLinkJSONResponse,
        tags=["missinglink"],
    )
    for part in (_users, experiments.router, logs.router, _unserved):  # _unserved last
        router.include_router(part)
    return router
