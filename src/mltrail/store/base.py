"""The one Store interface. SqlStore implements it over a database, HttpStore over a server.

Methods are named by intent. Every method that takes a project checks that the store's user may
touch it (SqlStore scoped with ``as_user``; the embedded store is single-user and sees all).
Errors are the ones of :mod:`mltrail.core.errors`, raised identically by both implementations.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from mltrail.core.types import (
    Chart,
    ChartSpec,
    Experiment,
    ExperimentRef,
    IterationMetric,
    JsonScalar,
    LogBatch,
    LogLine,
    MetricBatch,
    MetricSummary,
    Page,
    Project,
    Series,
    Status,
    WeightsLink,
)

LIST_PAGE_SIZE = 1000


class Store(abc.ABC):
    """Everything mltrail stores, behind intent-named methods."""

    # --- projects -------------------------------------------------------------------------
    @abc.abstractmethod
    def create_project(self, display_name: str, description: str = "") -> Project:
        """Create a project; its creator becomes a member."""

    @abc.abstractmethod
    def list_projects(self) -> list[Project]:
        """Projects the user is a member of, with experiment counts and last activity."""

    @abc.abstractmethod
    def get_project(self, project_id: int) -> Project:
        """Raises NotFoundError / PermissionDeniedError."""

    @abc.abstractmethod
    def find_project(self, display_name: str) -> Project | None:
        """The user's project with that display name, if any (the SDK's "id or name")."""

    @abc.abstractmethod
    def add_project_member(self, project_id: int, user_name: str) -> None:
        """Let another user see and change the project."""

    # --- experiments ----------------------------------------------------------------------
    @abc.abstractmethod
    def create_experiment(
        self,
        project_id: int,
        *,
        display_name: str | None = None,
        description: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (),
        status: Status = Status.RUNNING,
    ) -> Experiment:
        """Create the project's next experiment (numbered from 1 per project).

        ``display_name`` defaults to ``experiment-<n>``.
        """

    @abc.abstractmethod
    def get_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        """One experiment with its last metric values and ex_ metrics."""

    @abc.abstractmethod
    def list_experiments(
        self, project_id: int, *, offset: int = 0, limit: int = LIST_PAGE_SIZE
    ) -> Page:
        """A page of the project's experiments in id order, with summaries and ex_ metrics."""

    @abc.abstractmethod
    def latest_experiment(self, project_id: int) -> Experiment:
        """The project's most recently created experiment. NotFoundError when it has none."""

    @abc.abstractmethod
    def update_experiment(
        self,
        project_id: int,
        experiment_id: int,
        *,
        status: Status | None = None,
        display_name: str | None = None,
        description: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        source: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
    ) -> Experiment:
        """Change fields; hyperparameters, environment and source are merged into the old ones.

        Moving to running sets started_at, to a final status sets ended_at.
        """

    @abc.abstractmethod
    def request_stop(self, project_id: int, experiment_id: int) -> Experiment:
        """Ask a running or queued experiment to stop. ConflictError if it already ended."""

    # --- metric points ---------------------------------------------------------------------
    @abc.abstractmethod
    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        """Store a batch atomically; returns points stored, 0 when (client_id, seq) was seen."""

    @abc.abstractmethod
    def list_series(self, project_id: int, experiment_id: int) -> list[MetricSummary]:
        """Summaries (count, last, min, max) of every series of the experiment."""

    @abc.abstractmethod
    def read_series(
        self,
        project_id: int,
        experiment_id: int,
        key: str,
        phase: str,
        *,
        max_points: int | None = None,
    ) -> Series:
        """A series in iteration order; with ``max_points``, min/max downsampled to at most that
        many points (first and last kept), at a cost independent of the series length."""

    # --- external metrics, weights hashes, charts -----------------------------------------------
    @abc.abstractmethod
    def put_external_metrics(
        self, refs: Sequence[ExperimentRef], metrics: Mapping[str, JsonScalar]
    ) -> None:
        """Set ex_ metrics on every experiment in ``refs``, all or none."""

    @abc.abstractmethod
    def link_weights_hash(
        self,
        project_id: int,
        experiment_id: int,
        weights_hash: str,
        *,
        iteration: int | None,
        epoch: int | None,
    ) -> WeightsLink:
        """Record that this point of the experiment produced that hash."""

    @abc.abstractmethod
    def find_weights_hash(self, weights_hash: str) -> list[WeightsLink]:
        """Every link of the hash in projects the user can see (empty when none)."""

    @abc.abstractmethod
    def list_weights_links(self, project_id: int, experiment_id: int) -> list[WeightsLink]:
        """The experiment's hashes with their iteration and epoch."""

    @abc.abstractmethod
    def put_iteration_metrics(self, weights_hash: str, metrics: Mapping[str, JsonScalar]) -> int:
        """Attach metrics to every (experiment, iteration, epoch) linked to the hash.

        Returns how many links were touched; NotFoundError for an unknown hash.
        """

    @abc.abstractmethod
    def read_iteration_metrics(self, project_id: int, experiment_id: int) -> list[IterationMetric]:
        """The per-iteration external metrics of the experiment."""

    @abc.abstractmethod
    def put_chart(self, refs: Sequence[ExperimentRef], chart: ChartSpec) -> None:
        """Create or replace (same name) a custom chart on every experiment in ``refs``."""

    @abc.abstractmethod
    def list_charts(self, project_id: int, experiment_id: int) -> list[Chart]:
        """The experiment's custom charts."""

    # --- logs --------------------------------------------------------------------------------
    @abc.abstractmethod
    def append_logs(self, project_id: int, experiment_id: int, batch: LogBatch) -> int:
        """Store log lines in order; returns lines stored, 0 when (client_id, seq) was seen."""

    @abc.abstractmethod
    def read_logs(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, limit: int = 10_000
    ) -> list[LogLine]:
        """Log lines with seq > after_seq, oldest first."""

    # --- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
