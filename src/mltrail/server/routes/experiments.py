"""``/api/v1/projects/{p}/experiments``: create, search, read, update, stop, resume, heartbeat,
and the lifecycle (trash, archive, restore, purge)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from mltrail.core import lifecycle
from mltrail.core.codec import experiment_to_wire, liveness_to_wire
from mltrail.core.query import parse_query
from mltrail.core.wire import from_wire
from mltrail.server.deps import ExperimentId, OrjsonResponse, ProjectId, StoreDep
from mltrail.server.schemas import (
    ERROR_RESPONSES,
    ExperimentIn,
    ExperimentOut,
    ExperimentPage,
    ExperimentPatch,
    LivenessOut,
    PurgeOut,
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
    filter_text: str | None = Query(
        None, alias="filter", description="e.g. metrics.validation/loss < 0.5 and params.lr > 0"
    ),
    order_by: Annotated[
        list[str] | None, Query(description='repeatable: "metrics.validation/loss asc"')
    ] = None,
    include: str = Query("active", description="active, archived, deleted or all"),
) -> OrjsonResponse:
    """A page of the project's experiments matching ``filter`` (the grammar of
    ``core/query.py``), in ``order_by`` order then by number, with last metric values;
    ``total`` counts every match."""
    query = parse_query(filter_text, order_by)
    states = lifecycle.include(include)
    page = store.search_experiments(project_id, query, offset=offset, limit=limit, include=states)
    items = [experiment_to_wire(e) for e in page.items]
    # returned as a response: validating 1,000 items against the model (declared above for
    # the OpenAPI schema) cost more than building them; codec's output has that shape
    answer = {"items": items, "total": page.total, "offset": page.offset}
    if not page.total_exact:
        answer["total_exact"] = False
    return OrjsonResponse(answer)


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


@router.patch(
    "/{experiment_id}",
    response_model=ExperimentOut,
    responses={204: {"description": "changed, with `Prefer: return=minimal`: no body"}},
)
def update_experiment(
    project_id: ProjectId,
    experiment_id: ExperimentId,
    body: ExperimentPatch,
    store: StoreDep,
    prefer: Annotated[str | None, Header(description="`return=minimal`: answer 204")] = None,
) -> dict | Response:
    """Change the fields sent; hyperparameters, environment and source are merged."""
    fields = from_wire(body.model_dump(exclude_unset=True, exclude_none=True))
    if not _minimal(prefer):
        return experiment_to_wire(store.update_experiment(project_id, experiment_id, **fields))
    if fields.keys() == {"status"}:  # a run's end: the experiment is not read back
        store.record_status(project_id, experiment_id, fields["status"])
    else:
        store.update_experiment(project_id, experiment_id, **fields)
    return Response(status_code=204, headers={"Preference-Applied": "return=minimal"})


def _minimal(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header (RFC 7240) asks for ``return=minimal``."""
    if not prefer:
        return False
    return any(p.split(";")[0].strip().lower() == "return=minimal" for p in prefer.split(","))


@router.delete("/{experiment_id}", response_model=ExperimentOut)
def delete_experiment(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """Move the experiment to the trash (restorable for ``MLTRAIL_TRASH_DAYS`` days)."""
    return experiment_to_wire(store.delete_experiment(project_id, experiment_id))


@router.post("/{experiment_id}/archive", response_model=ExperimentOut)
def archive_experiment(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """Hide the experiment from lists (``include=archived`` shows it)."""
    return experiment_to_wire(store.archive_experiment(project_id, experiment_id))


@router.post("/{experiment_id}/restore", response_model=ExperimentOut)
def restore_experiment(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """Bring an archived or trashed experiment back (409 once the trash's retention passed)."""
    return experiment_to_wire(store.restore_experiment(project_id, experiment_id))


@router.post("/{experiment_id}/purge", response_model=PurgeOut)
def purge_experiment(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """Remove the experiment and everything it owns for good (409 while it runs)."""
    removed = store.purge_experiment(project_id, experiment_id)
    return {"project": project_id, "experiment": experiment_id, "blobs_removed": removed}


@router.post("/{experiment_id}/stop", response_model=ExperimentOut)
def request_stop(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """Ask a queued or running experiment to stop (409 when it already ended); a crashed or
    silent run is recorded ``stopped`` at once."""
    return experiment_to_wire(store.request_stop(project_id, experiment_id))


@router.post("/{experiment_id}/resume", response_model=ExperimentOut)
def resume_experiment(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """Continue a run (``mltrail.start(resume=...)``): it reads ``running`` again, whatever it
    was, heartbeating now; its end time and stop request are cleared."""
    return experiment_to_wire(store.resume_experiment(project_id, experiment_id))


@router.post("/{experiment_id}/heartbeat", response_model=LivenessOut)
def record_heartbeat(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> dict:
    """The run is alive now; one whose heartbeats stop for ``crash_after`` s reads crashed."""
    return liveness_to_wire(store.record_heartbeat(project_id, experiment_id))
