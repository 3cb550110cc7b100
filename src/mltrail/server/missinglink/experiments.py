"""The client's experiment calls: list, get, ex_ metrics, charts, per-iteration metrics.

Each handler translates the request (shapes.py), parses it with the parse constructors
``/api/v1`` uses and makes the one Store call ``/api/v1`` makes, on the request user's store:
a by-hash write is one transaction for every experiment holding the hash, all or none. The
writes answer as ``/api/v1`` does (``{"ok", "updated": [{"project", "experiment"}]}``,
``{"touched"}``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from mltrail.core import codec, validation
from mltrail.core.errors import ValidationError
from mltrail.core.types import Target
from mltrail.server.deps import ExperimentId, ProjectId
from mltrail.server.missinglink.errors import MissingLinkRoute
from mltrail.server.missinglink.shapes import chart_spec, experiment_shape
from mltrail.server.missinglink.tokens import MissingLinkStore
from mltrail.server.routes.external import parse_ex_metrics
from mltrail.store.base import Store

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
    target = validation.experiment_ref(project_id, experiment_id)
    return _put_external_metrics(store, target, body)


@router.post("/model_weights_hashes/{weights_hash}/metrics")
def update_metrics_by_hash(
    weights_hash: str,
    body: JsonBody,
    store: MissingLinkStore,
    experiment_only: str | None = Query(None),
) -> dict[str, Any]:
    """``experiment_only=1``: ``update_metrics(weights_hash=)``, every experiment holding it;
    without it: ``update_metrics_per_iteration``, every (experiment, iteration) holding it."""
    digest = validation.weights_hash(weights_hash)
    if experiment_only not in (None, "", "0"):
        return _put_external_metrics(store, digest, body)
    return {"touched": store.put_iteration_metrics(digest, parse_ex_metrics(body))}


@router.put("/projects/{project_id}/experiments/{experiment_id}/chart/{chart_id}")
def update_chart(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    chart_id: str,
    body: JsonBody,
    store: MissingLinkStore,
) -> dict[str, Any]:
    """``update_chart(..., project=, experiment=)``; the same name replaces the chart."""
    spec = chart_spec(body, chart_id)
    target = validation.experiment_ref(project_id, experiment_id)
    return codec.updated_to_wire(store.put_chart((target,), spec))


@router.put("/model_weights_hashes/{weights_hash}/chart/{chart_id}")
def update_chart_by_hash(
    weights_hash: str, chart_id: str, body: JsonBody, store: MissingLinkStore
) -> dict[str, Any]:
    """``update_chart(..., weights_hash=)``: every experiment holding the hash."""
    spec = chart_spec(body, chart_id)
    digest = validation.weights_hash(weights_hash)
    return codec.updated_to_wire(store.put_chart((digest,), spec))


def _put_external_metrics(store: Store, target: Target, body: Any) -> dict[str, Any]:
    metrics = parse_ex_metrics(body)
    return codec.updated_to_wire(store.put_external_metrics((target,), metrics))


def _cursor(token: str | None) -> int:
    if token is None or token == "":
        return 0
    if not (token.isdigit() and len(token) <= _MAX_CURSOR_DIGITS):
        raise ValidationError(
            f"must be a next_experiments_token from the previous page, got {token!r}",
            "cursor_token",
        )
    return int(token)
