"""Custom charts: created or replaced by name on one or several experiments."""

from __future__ import annotations

from fastapi import APIRouter

from mltrail.core import codec, validation
from mltrail.core.wire import from_wire
from mltrail.server.deps import ExperimentId, ProjectId, StoreDep
from mltrail.server.routes.external import parse_targets
from mltrail.server.schemas import ERROR_RESPONSES, ChartIn, ChartOut, UpdatedOut

router = APIRouter(tags=["charts"], responses=ERROR_RESPONSES)


@router.post("/charts", response_model=UpdatedOut)
def put_chart(body: ChartIn, store: StoreDep) -> dict:
    """Create or replace (same name) a chart on every target, all or none."""
    c = body.chart
    spec = validation.chart(
        c.name,
        chart_x_name=c.x_name,
        chart_y_name=c.y_names,
        chart_scope=c.scope,
        chart_type=c.type,
        chart_x=from_wire(c.x),
        chart_y=from_wire(c.y),
    )
    return codec.updated_to_wire(store.put_chart(parse_targets(body.targets), spec))


@router.get(
    "/projects/{project_id}/experiments/{experiment_id}/charts", response_model=list[ChartOut]
)
def list_charts(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> list[dict]:
    return [codec.chart_to_wire(c) for c in store.list_charts(project_id, experiment_id)]
