"""The external (``ex_``) metrics noun of the Store: set after or during a run, on experiments
or, through a weights hash, on the (experiment, iteration, epoch) points that produced it."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

from mltrail.core.types import ExMetrics, ExperimentRef, IterationMetric, JsonScalar, Target


class ExternalStore(abc.ABC):
    """ex_ metrics per experiment and per iteration."""

    @abc.abstractmethod
    def put_external_metrics(
        self, targets: Sequence[Target], metrics: ExMetrics | Mapping[str, JsonScalar]
    ) -> list[ExperimentRef]:
        """Set ex_ metrics on every experiment the targets name, all or none.

        Args:
            targets: experiment references and weights hashes (a hash names every experiment
                holding it); resolved in the same transaction as the write.
            metrics: checked ex_ metrics (a plain mapping is checked here).

        Returns:
            The experiments written, in (project, experiment) order.

        Raises:
            NotFoundError: an unknown experiment, or a hash no visible experiment holds.
        """

    @abc.abstractmethod
    def put_iteration_metrics(
        self, weights_hash: str, metrics: ExMetrics | Mapping[str, JsonScalar]
    ) -> int:
        """Attach metrics to every (experiment, iteration, epoch) linked to the hash, all or none.

        Returns how many links were touched; NotFoundError for an unknown hash.
        """

    @abc.abstractmethod
    def read_iteration_metrics(self, project_id: int, experiment_id: int) -> list[IterationMetric]:
        """The per-iteration external metrics of the experiment."""
