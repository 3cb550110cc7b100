"""The client's experiment calls: list, get, ex_ metrics, charts, per-iteration metrics.

Each handler translates the request (shapes.py) and makes the contract's call on the request
user's store, the same call ``as_api().experiments`` and ``/api/v1`` make.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from mltrail.api import ExperimentsApi
from mltrail.core.errors import ValidationError
from mltrail.server.deps import ExperimentId, ProjectId
from mltrail.server.missinglink.errors import MissingLinkRoute
from mltrail.server.missinglink.shapes import chart_arguments, experiment_shape
from mltrail.server.missinglink.tokens import MissingLinkStore

LIST_PAGE_SIZE = 100  # the client asks for the next page only after a full page of 100
_MAX_CURSOR_DIGITS = 18

router = APIRouter(route_class=MissingLinkRoute)
JsonBody = Annotated[Any, Body()]


@router.get("/projects/{project_id}/experiments")
def list_experiments(
    project_id: ProjectId, store: MissingLinkStore, cursor_token: str | None = Query(None)
) -> dict[str, Any]:
    """A page of 100 experiments; ``next_experiments_token`` names the next one."""
    offset = _cursor(cursor_token)
    page = store.list_experiments(project_id, offset=offset, limit=LIST_PAGE_SIZE)
    end = offset + len(page.items)
    return {
        "experiments": [experiment_shape(e) for e in page.items],
        "next_experiments_token": str(end) if page.items and end < page.total else None,
    }


@router.get("/projects/{project_id}/experiments/{experiment_id}")
def get_experiment(
    project_id: ProjectId, experiment_id: ExperimentId, store: MissingLinkStore
) -> dict[str, Any]:
    """One experiment; the client reads its ``status`` to choose logs/read or the live stream."""
    return experiment_shape(store.get_experiment(project_id, experiment_id))


@router.post("/projects/{project_id}/experiments/{experiment_id}/metrics")
def update_metrics(
    project_id: ProjectId, experiment_id: ExperimentId, body: JsonBody, store: MissingLinkStore
) -> dict[str, Any]:
    """``update_metrics(metrics=body, project=, experiment=)``."""
    refs = ExperimentsApi(store).update_metrics(body, project=project_id, experiment=experiment_id)
    return {"ok": True, "experiments": refs}


@router.post("/model_weights_hashes/{weights_hash}/metrics")
def update_metrics_by_hash(
    weights_hash: str,
    body: JsonBody,
    store: MissingLinkStore,
    experiment_only: str | None = Query(None),
) -> dict[str, Any]:
    """``experiment_only=1``: ``update_metrics(weights_hash=)``, every experiment holding it;
    without it: ``update_metrics_per_iteration``, every (experiment, iteration) holding it."""
    api = ExperimentsApi(store)
    if experiment_only not in (None, "", "0"):
        return {"ok": True, "experiments": api.update_metrics(body, weights_hash=weights_hash)}
    return {"ok": True, "updated": api.update_metrics_per_iteration(weights_hash, body)}


@router.put("/projects/{project_id}/experiments/{experiment_id}/chart/{chart_id}")
def update_chart(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    chart_id: str,
    body: JsonBody,
    store: MissingLinkStore,
) -> dict[str, Any]:
    """``update_chart(..., project=, experiment=)``; the same name replaces the chart."""
    arguments = chart_arguments(body, chart_id)
    refs = ExperimentsApi(store).update_chart(
        project=project_id, experiment=experiment_id, **arguments
    )
    return {"ok": True, "experiments": refs}


@router.put("/model_weights_hashes/{weights_hash}/chart/{chart_id}")
def update_chart_by_hash(
    weights_hash: str, chart_id: str, body: JsonBody, store: MissingLinkStore
) -> dict[str, Any]:
    """``update_chart(..., weights_hash=)``: every experiment holding the hash."""
    arguments = chart_arguments(body, chart_id)
    refs = ExperimentsApi(store).update_chart(weights_hash=weights_hash, **arguments)
    return {"ok": True, "experiments": refs}


def _cursor(token: str | None) -> int:
    if token is None or token == "":
        return 0
    if not (token.isdigit() and len(token) <= _MAX_CURSOR_DIGITS):
        raise ValidationError(
            f"must be a next_experiments_token from the previous page, got {token!r}",
            "cursor_token",
        )
    return int(token)
