"""External (``ex_``) metrics: on experiments, or through a weights hash on the iterations and
epochs that produced it. Each write is one Store call, so by-hash writes are atomic."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mltrail.core import codec, validation
from mltrail.core.types import ExMetrics, Target
from mltrail.core.wire import from_wire
from mltrail.server.deps import ExperimentId, ProjectId, StoreDep
from mltrail.server.schemas import (
    ERROR_RESPONSES,
    ExternalMetricsIn,
    IterationMetricOut,
    IterationMetricsIn,
    TargetIn,
    TouchedOut,
    UpdatedOut,
)

router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)


def parse_targets(targets: list[TargetIn]) -> list[Target]:
    """Request targets as checked values (the hash rule runs here, once)."""
    parsed: list[Target] = []
    for t in targets:
        if t.project is not None and t.experiment is not None:
            parsed.append(validation.experiment_ref(t.project, t.experiment))
        else:
            parsed.append(validation.weights_hash(t.weights_hash))
    return parsed


def parse_ex_metrics(metrics: dict[str, Any] | str) -> ExMetrics:
    """The contract's JSON text, or an object with tagged non-finite floats."""
    return validation.ex_metrics(metrics if isinstance(metrics, str) else from_wire(metrics))


@router.post("/external-metrics", response_model=UpdatedOut)
def put_external_metrics(body: ExternalMetricsIn, store: StoreDep) -> dict:
    """Set ex_ metrics on every target (experiments, or every experiment holding a hash), all
    or none; answers the experiments written."""
    metrics = parse_ex_metrics(body.metrics)
    updated = store.put_external_metrics(parse_targets(body.targets), metrics)
    return codec.updated_to_wire(updated)


@router.post("/weights/{weights_hash}/iteration-metrics", response_model=TouchedOut)
def put_iteration_metrics(weights_hash: str, body: IterationMetricsIn, store: StoreDep) -> dict:
    """Attach metrics to every (experiment, iteration, epoch) linked to the hash, all or none."""
    metrics = parse_ex_metrics(body.metrics)
    digest = validation.weights_hash(weights_hash)
    return {"touched": store.put_iteration_metrics(digest, metrics)}


@router.get(
    "/projects/{project_id}/experiments/{experiment_id}/iteration-metrics",
    response_model=list[IterationMetricOut],
)
def read_iteration_metrics(
    project_id: ProjectId, experiment_id: ExperimentId, store: StoreDep
) -> list[dict]:
    metrics = store.read_iteration_metrics(project_id, experiment_id)
    return [codec.iteration_metric_to_wire(m) for m in metrics]
