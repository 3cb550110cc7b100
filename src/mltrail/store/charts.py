"""The custom charts noun of the Store: named per experiment, replaced by name."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from mltrail.core.types import Chart, ChartSpec, ExperimentRef, Target


class ChartStore(abc.ABC):
    """Custom charts sent by users (``update_chart``)."""

    @abc.abstractmethod
    def put_chart(self, targets: Sequence[Target], chart: ChartSpec) -> list[ExperimentRef]:
        """Create or replace (same name) a chart on every experiment the targets name, all or
        none; returns the experiments written (see ``ExternalStore.put_external_metrics``)."""

    @abc.abstractmethod
    def list_charts(self, project_id: int, experiment_id: int) -> list[Chart]:
        """The experiment's custom charts, by name."""
