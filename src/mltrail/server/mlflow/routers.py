"""The MLflow surface's routers, mounted under each of ``PREFIXES`` and ``ARTIFACT_PREFIXES``
(see the package's docstring) by the app on the first request for them."""

from __future__ import annotations

from fastapi import APIRouter

from mltrail.core.errors import NotFoundError
from mltrail.server.mlflow import artifacts, experiments, metrics, models, runs, search
from mltrail.server.mlflow.errors import MlflowJSONResponse, MlflowRoute
from mltrail.server.mlflow.messages import PathDep, StoreDep

_unserved = APIRouter(route_class=MlflowRoute)


@_unserved.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_served(path: PathDep, store: StoreDep) -> None:
    """Any other MLflow call (after the token check, as every route of the surface): a 404
    in MLflow's shape naming the call."""
    raise NotFoundError(
        f"the MLflow call {path!r} is not served by mltrail (see docs/mlflow.md)", "path"
    )


def _router(*parts: APIRouter) -> APIRouter:
    """One router holding the parts' routes themselves, in order: an included router is
    matched through a wrapper per part, which a one-point log_metric paid for each route
    tried before its own. (Each route renders MLflow's JSON itself, see ``MlflowRoute``.)"""
    router = APIRouter(
        include_in_schema=False, default_response_class=MlflowJSONResponse, tags=["mlflow"]
    )
    for part in (*parts, _unserved):  # _unserved last
        router.routes.extend(part.routes)
    return router


def mlflow_router() -> APIRouter:
    """Every tracking route, to include under each of :data:`PREFIXES` (the metric writes
    first: the routes are tried in order)."""
    return _router(metrics.router, runs.router, experiments.router, search.router, models.router)


def mlflow_artifacts_router() -> APIRouter:
    """The artifact proxy routes, to include under each of :data:`ARTIFACT_PREFIXES`."""
    return _router(artifacts.router)
