"""``/api/v1/projects/{p}/experiments``: create, list, read, update, stop, heartbeat."""

from __future__ import annotations

from fastapi import APIRouter, Query

from mltrail.core.codec import experiment_to_wire, liveness_to_wire
from mltrail.core.wire import from_wire
from mltrail.server.deps import ExperimentId, OrjsonResponse, ProjectId, StoreDep
from mltrail.server.schemas import (
    ERROR_RESPONSES,
    ExperimentIn,
    ExperimentOut,
    ExperimentPage,
    ExperimentPatch,
    LivenessOut,
)
from mltrail.store.base import LIST_PAGE_SIZE

router = APIRouter(
    prefix="/projects/{project_id}/experiments", tags=["experiments"], responses=ERROR_RESPONSES
)


@router.get("", response_model=ExperimentPage)
def list_experiments(
    project_id: ProjectId,
    store: StoreDep,
    offset: int = Query(0, ge=0),
    limit: int = Query(LIST_PAGE_SIZE, ge=1, le=LIST_PAGE_SIZE),
) -> OrjsonResponse:
    """A page of the project's experiments in id order, with last metric values."""
    page = store.list_experiments(project_id, offset=offset, limit=limit)
    items = [experiment_to_wire(e) for e in page.items]
    # returned as a response: validating 1,000 items against the model (declared above for
    # the OpenAPI schema) cost more than building them; codec's output has that shape
    return OrjsonResponse({"items": items, "total": page.total, "offset": page.offset})


@router.post("", response_model=ExperimentOut, status_code=201)
def create_experiment(project_id: ProjectId, body: ExperimentIn, store: StoreDep) -> dict:
    """Create the project's next experiment."""
    fields = from_wire(body.model_dump(exclude={"status"}))
    return experiment_to_wire(store.create_experiment(project_id, status=body.status, **fields))


@router.get("/latest", response_model=ExperimentOut)
def latest_experiment(project_id: ProjectId, store: StoreDep) -> dict:
    return experiment_to_wire(store.latest_experiment(project_id))


@router.get("/{experiment_id}", response_model=ExperimentOut)
def get_experiment(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    return experiment_to_wire(store.get_experiment(project_id, experiment_id))


@router.patch("/{experiment_id}", response_model=ExperimentOut)
def update_experiment(
    project_id: ProjectId, experiment_id: ExperimentId, body: ExperimentPatch, store: StoreDep
) -> dict:
    """Change the fields sent; hyperparameters, environment and source are merged."""
    fields = from_wire(body.model_dump(exclude_unset=True, exclude_none=True))
    return experiment_to_wire(store.update_experiment(project_id, experiment_id, **fields))


@router.post("/{experiment_id}/stop", response_model=ExperimentOut)
def request_stop(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """Ask a queued or running experiment to stop (409 when it already ended); a crashed or
    silent run is recorded ``stopped`` at once."""
    return experiment_to_wire(store.request_stop(project_id, experiment_id))


@router.post("/{experiment_id}/heartbeat", response_model=LivenessOut)
def record_heartbeat(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """The run is alive now; one whose heartbeats stop for ``crash_after`` s reads crashed."""
    return liveness_to_wire(store.record_heartbeat(project_id, experiment_id))
