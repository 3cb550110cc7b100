"""The experiments noun of the Store: numbered per project, with status, metadata and
liveness (heartbeats; see :mod:`mltrail.core.liveness`)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from mltrail.core.lifecycle import Lifecycle
from mltrail.core.liveness import Liveness
from mltrail.core.query import Query
from mltrail.core.types import Experiment, Page, Status

LIST_PAGE_SIZE = 1000


class ExperimentStore(abc.ABC):
    """Experiments: creation with per-project numbers, reads, changes, stop requests."""

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
        client_id: str | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
    ) -> Experiment:
        """Create the project's next experiment (numbered from 1 per project).

        ``display_name`` defaults to ``experiment-<n>``. ``started_at`` / ``ended_at`` (unix
        seconds) record times a run had elsewhere (an import); by default a running run starts
        now and a finished one also ends now. ``client_id`` makes it idempotent: the
        id a run started offline generated for itself; creating it again returns the
        experiment made the first time (ConflictError when that one is in another project).
        """

    @abc.abstractmethod
    def get_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        """One experiment with its last metric values and ex_ metrics."""

    @abc.abstractmethod
    def list_experiments(
        self, project_id: int, *, offset: int = 0, limit: int = LIST_PAGE_SIZE
    ) -> Page:
        """A page of the project's active experiments in id order, with summaries and ex_
        metrics (``search_experiments`` without a query)."""

    @abc.abstractmethod
    def search_experiments(
        self,
        project_id: int,
        query: Query | None = None,
        *,
        offset: int = 0,
        limit: int = LIST_PAGE_SIZE,
        include: tuple[Lifecycle, ...] = (Lifecycle.ACTIVE,),
    ) -> Page:
        """A page of the project's experiments that match ``query.filter``, in
        ``query.order_by`` order then by number, executed in the database; ``total`` counts
        every match. ``include``: the lifecycle states to consider (``core.lifecycle.include``).
        """

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
        notes: str | None = None,
        add_tags: Sequence[str] = (),
        remove_tags: Sequence[str] = (),
        resume: bool = False,
        ended_at: float | None = None,
        keep_hyperparameters: bool = False,
    ) -> Experiment:
        """Change fields; hyperparameters, environment and source are merged into the old ones;
        ``tags`` replaces the tags, ``add_tags`` / ``remove_tags`` change them in place.

        ``keep_hyperparameters``: the hyperparameters given may only add keys (or repeat a
        key's value): one already set to another value refuses the whole update
        (ValidationError naming ``hyperparameters``), judged in the update's transaction, so
        of two concurrent calls setting a new key differently, one is refused (MLflow's
        params never change).

        Moving to running sets started_at, to a final status sets ended_at (now, or the
        ``ended_at`` given: unix seconds, the time a client says its run ended; it is also
        kept for a run already finished, and refused for one that stays running or queued,
        which has no end). A finished run
        moves back to running or queued only with ``resume=True``
        (``core.lifecycle.check_status_change``; ConflictError otherwise), which resumes it
        exactly as :meth:`resume_experiment` does (in the same transaction as the other
        changes).
        """

    def record_status(self, project_id: int, experiment_id: int, status: Status) -> None:
        """``update_experiment(..., status=status)`` without the experiment read back: what a
        run's end records (its SDK has no use for the answer). A store overrides it when
        reading the experiment back costs something (SqlStore, HttpStore)."""
        self.update_experiment(project_id, experiment_id, status=status)

    @abc.abstractmethod
    def delete_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        """Move the experiment to the trash: hidden from lists, restorable for the store's
        trash retention. Also purges the project's experiments whose retention ran out."""

    @abc.abstractmethod
    def archive_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        """Hide the experiment from lists (``include="archived"`` shows it); nothing is lost."""

    @abc.abstractmethod
    def restore_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        """Bring an archived or deleted experiment back to the active list."""

    @abc.abstractmethod
    def purge_experiment(self, project_id: int, experiment_id: int) -> int:
        """Remove the experiment and everything it owns for good: points, logs, charts,
        ex_ metrics, weights links, artifact paths and the blobs nobody else references.
        Its number is never given again. Returns the number of blobs removed."""

    @abc.abstractmethod
    def request_stop(self, project_id: int, experiment_id: int) -> Experiment:
        """Ask a running or queued experiment to stop. ConflictError if it already ended.

        A run that reads crashed, or has not heartbeated lately (nobody would see the
        request), is recorded ``stopped`` at once; its followers end.
        """

    @abc.abstractmethod
    def record_heartbeat(self, project_id: int, experiment_id: int) -> Liveness:
        """Record that the run is alive now (its SDK's writer thread calls this every few
        seconds); a run whose heartbeats stop for ``crash_after`` seconds reads ``crashed``.

        Returns:
            The stored status, the time recorded and the store's ``crash_after``.
        """

    @abc.abstractmethod
    def resume_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        """Continue a run (``mltrail.start(resume=...)``): whatever its status, it becomes
        ``running`` again with its start time kept, its end time and stop request cleared, a
        heartbeat recorded now (when it heartbeated before) and a ``run resumed (was ...)``
        log line. ``update_experiment(..., status=RUNNING, resume=True)`` is the same resume.
        ConflictError for a run in the trash.
        """
