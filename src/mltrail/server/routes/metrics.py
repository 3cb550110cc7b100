"""External (``ex_``) metrics set on experiments after or during a run."""

from __future__ import annotations

from fastapi import APIRouter

from mltrail.core import validation
from mltrail.core.types import ExperimentRef
from mltrail.server.deps import StoreDep
from mltrail.server.schemas import ERROR_RESPONSES, ExternalMetricsIn, OkOut

router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)


@router.post("/external-metrics", response_model=OkOut)
def put_external_metrics(body: ExternalMetricsIn, store: StoreDep) -> dict:
    """Set ex_ metrics on every target, all or none (metrics are JSON text)."""
    refs = [ExperimentRef(t.project_id, t.experiment_id) for t in body.targets]
    store.put_external_metrics(refs, validation.ex_metrics(body.metrics))
    return {"ok": True}
