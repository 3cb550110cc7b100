"""The ex_ metrics half of HttpStore: each write is one request, whatever it targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

from mltrail.core import codec, validation
from mltrail.core.types import ExMetrics, ExperimentRef, IterationMetric, JsonScalar, Target
from mltrail.store.external import ExternalStore
from mltrail.store.http.transport import HttpNoun


class HttpExternal(HttpNoun, ExternalStore):
    """The external half of HttpStore: each :class:`ExternalStore` method is one request."""

    def put_external_metrics(
        self, targets: Sequence[Target], metrics: ExMetrics | Mapping[str, JsonScalar]
    ) -> list[ExperimentRef]:
        body = {
            "targets": [codec.target_to_wire(t) for t in validation.as_targets(targets)],
            "metrics": codec.ex_metrics_to_wire(validation.as_ex_metrics(metrics)),
        }
        answer = self._http.call("POST", "/external-metrics", body=body, repeatable=True)
        return codec.updated_from_wire(answer)

    def put_iteration_metrics(
        self, weights_hash: str, metrics: ExMetrics | Mapping[str, JsonScalar]
    ) -> int:
        path = f"/weights/{quote(str(weights_hash), safe='')}/iteration-metrics"
        body = {"metrics": codec.ex_metrics_to_wire(validation.as_ex_metrics(metrics))}
        return int(self._http.call("POST", path, body=body, repeatable=True)["touched"])

    def read_iteration_metrics(self, project_id: int, experiment_id: int) -> list[IterationMetric]:
        found = self._get(self._experiment_path(project_id, experiment_id) + "/iteration-metrics")
        return [codec.iteration_metric_from_wire(m) for m in found]
