"""Custom charts: created or replaced by name on one or several experiments."""

from __future__ import annotations

from fastapi import APIRouter

from mltrail.core import validation
from mltrail.core.codec import chart_to_wire
from mltrail.core.types import ExperimentRef
from mltrail.core.wire import from_wire
from mltrail.server.deps import ExperimentId, ProjectId, StoreDep
from mltrail.server.schemas import ERROR_RESPONSES, ChartIn, ChartOut, OkOut

router = APIRouter(tags=["charts"], responses=ERROR_RESPONSES)


@router.post("/charts", response_model=OkOut)
def put_chart(body: ChartIn, store: StoreDep) -> dict:
    """Create or replace (same name) a chart on every target."""
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
    refs = [ExperimentRef(t.project_id, t.experiment_id) for t in body.targets]
    store.put_chart(refs, spec)
    return {"ok": True}


@router.get(
    "/projects/{project_id}/experiments/{experiment_id}/charts", response_model=list[ChartOut]
)
def list_charts(project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep) -> list[dict]:
    return [chart_to_wire(c) for c in store.list_charts(project_id, experiment_id)]
