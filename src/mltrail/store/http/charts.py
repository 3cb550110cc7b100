"""The custom charts half of HttpStore."""

from __future__ import annotations

from collections.abc import Sequence

from mltrail.core import codec, validation
from mltrail.core.types import Chart, ChartSpec, ExperimentRef, Target
from mltrail.store.charts import ChartStore
from mltrail.store.http.transport import HttpNoun


class HttpCharts(HttpNoun, ChartStore):
    """The charts half of HttpStore: each :class:`ChartStore` method is one request."""

    def put_chart(self, targets: Sequence[Target], chart: ChartSpec) -> list[ExperimentRef]:
        body = {
            "targets": [codec.target_to_wire(t) for t in validation.as_targets(targets)],
            "chart": codec.chart_spec_to_wire(chart),
        }
        return codec.updated_from_wire(
            self._http.call("POST", "/charts", body=body, repeatable=True)
        )

    def list_charts(self, project_id: int, experiment_id: int) -> list[Chart]:
        found = self._get(self._experiment_path(project_id, experiment_id) + "/charts")
        return [codec.chart_from_wire(c) for c in found]
