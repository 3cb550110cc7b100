"""SqlStore: the Store interface over SQLite or PostgreSQL (SQLAlchemy Core).

Each method is one transaction in one module named after its noun; this class only opens
the transaction, passes the user's scope and the clock, and delegates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
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
    User,
    WeightsLink,
)
from mltrail.store.base import LIST_PAGE_SIZE, Store
from mltrail.store.sql import charts, experiments, external, logs, points, projects
from mltrail.store.sql.access import Scope
from mltrail.store.sql.auth import Auth
from mltrail.store.sql.engine import Database, make_engine, upgrade
from mltrail.store.sql.jobs import SqlJobStore


class SqlStore(SqlJobStore, Store):
    """The embedded and server-side store.

    Build it with :meth:`open`; scope it to a user with :meth:`as_user` (the server does, per
    request). Unscoped, it is the embedded single user and sees every project.
    """

    def __init__(self, db: Database, scope: Scope | None = None) -> None:
        self._db = db
        self._scope = scope or Scope()
        self.auth = Auth(db)

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], float] = time.time) -> SqlStore:
        """Connect to ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``) and migrate.

        Args:
            url: the database URL.
            clock: source of unix times, injectable for tests.

        Raises:
            ValidationError: for an unsupported URL (field ``db_url``).
        """
        db = Database(make_engine(url), clock)
        upgrade(db)
        return cls(db)

    def as_user(self, user: User) -> SqlStore:
        """A view acting for ``user``, sharing this store's engine."""
        return SqlStore(self._db, Scope(user))

    @property
    def user(self) -> User | None:
        """The user this view acts for (``None``: embedded, sees all)."""
        return self._scope.user

    @property
    def url(self) -> str:
        return self._db.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Dispose of the engine (closes every view sharing it)."""
        self._db.close()

    # --- projects ----------------------------------------------------------------------------
    def create_project(self, display_name: str, description: str = "") -> Project:
        with self._db.write() as conn:
            return projects.create_project(
                conn, self._scope, self._db.clock(), display_name, description
            )

    def list_projects(self) -> list[Project]:
        with self._db.read() as conn:
            return projects.list_projects(conn, self._scope)

    def get_project(self, project_id: int) -> Project:
        with self._db.read() as conn:
            return projects.get_project(conn, self._scope, project_id)

    def find_project(self, display_name: str) -> Project | None:
        with self._db.read() as conn:
            return projects.find_project(conn, self._scope, display_name)

    def add_project_member(self, project_id: int, user_name: str) -> None:
        with self._db.write() as conn:
            projects.add_member(conn, self._scope, project_id, user_name)

    # --- experiments -------------------------------------------------------------------------
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
        fields = {
            "display_name": display_name,
            "description": description,
            "hyperparameters": hyperparameters,
            "environment": environment,
            "source": source,
            "tags": tags,
            "status": status,
        }
        with self._db.write() as conn:
            return experiments.create_experiment(
                conn, self._scope, self._db.clock(), project_id, fields
            )

    def get_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        with self._db.read() as conn:
            return experiments.get_experiment(conn, self._scope, (project_id, experiment_id))

    def list_experiments(
        self, project_id: int, *, offset: int = 0, limit: int = LIST_PAGE_SIZE
    ) -> Page:
        with self._db.read() as conn:
            return experiments.list_experiments(conn, self._scope, project_id, offset, limit)

    def latest_experiment(self, project_id: int) -> Experiment:
        with self._db.read() as conn:
            return experiments.latest_experiment(conn, self._scope, project_id)

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
        changes = {
            "status": status,
            "display_name": display_name,
            "description": description,
            "hyperparameters": hyperparameters,
            "environment": environment,
            "source": source,
            "tags": tags,
        }
        with self._db.write() as conn:
            return experiments.update_experiment(
                conn, self._scope, self._db.clock(), (project_id, experiment_id), changes
            )

    def request_stop(self, project_id: int, experiment_id: int) -> Experiment:
        with self._db.write() as conn:
            return experiments.request_stop(
                conn, self._scope, self._db.clock(), (project_id, experiment_id)
            )

    # --- metric points -----------------------------------------------------------------------
    def append_points(self, project_id: int, experiment_id: int, batch: MetricBatch) -> int:
        with self._db.write() as conn:
            return points.append_points(
                conn, self._db, self._scope, (project_id, experiment_id), batch
            )

    def list_series(self, project_id: int, experiment_id: int) -> list[MetricSummary]:
        with self._db.read() as conn:
            return points.list_series(conn, self._scope, (project_id, experiment_id))

    def read_series(
        self,
        project_id: int,
        experiment_id: int,
        key: str,
        phase: str,
        *,
        max_points: int | None = None,
    ) -> Series:
        with self._db.read() as conn:
            ref = (project_id, experiment_id)
            return points.read_series(conn, self._scope, ref, key, phase, max_points).series

    # --- external metrics, weights hashes, charts --------------------------------------------
    def put_external_metrics(
        self, refs: Sequence[ExperimentRef], metrics: Mapping[str, JsonScalar]
    ) -> None:
        with self._db.write() as conn:
            external.put_external_metrics(conn, self._db, self._scope, refs, metrics)

    def link_weights_hash(
        self,
        project_id: int,
        experiment_id: int,
        weights_hash: str,
        *,
        iteration: int | None,
        epoch: int | None,
    ) -> WeightsLink:
        with self._db.write() as conn:
            return external.link_weights_hash(
                conn,
                self._db,
                self._scope,
                (project_id, experiment_id),
                weights_hash,
                (iteration, epoch),
            )

    def find_weights_hash(self, weights_hash: str) -> list[WeightsLink]:
        with self._db.read() as conn:
            return external.find_weights_hash(conn, self._scope, weights_hash)

    def list_weights_links(self, project_id: int, experiment_id: int) -> list[WeightsLink]:
        with self._db.read() as conn:
            return external.list_weights_links(conn, self._scope, (project_id, experiment_id))

    def put_iteration_metrics(self, weights_hash: str, metrics: Mapping[str, JsonScalar]) -> int:
        with self._db.write() as conn:
            return external.put_iteration_metrics(
                conn, self._db, self._scope, weights_hash, metrics
            )

    def read_iteration_metrics(self, project_id: int, experiment_id: int) -> list[IterationMetric]:
        with self._db.read() as conn:
            return external.read_iteration_metrics(conn, self._scope, (project_id, experiment_id))

    def put_chart(self, refs: Sequence[ExperimentRef], chart: ChartSpec) -> None:
        with self._db.write() as conn:
            charts.put_chart(conn, self._db, self._scope, refs, chart)

    def list_charts(self, project_id: int, experiment_id: int) -> list[Chart]:
        with self._db.read() as conn:
            return charts.list_charts(conn, self._scope, (project_id, experiment_id))

    # --- logs --------------------------------------------------------------------------------
    def append_logs(self, project_id: int, experiment_id: int, batch: LogBatch) -> int:
        with self._db.write() as conn:
            return logs.append_logs(conn, self._db, self._scope, (project_id, experiment_id), batch)

    def read_logs(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, limit: int = 10_000
    ) -> list[LogLine]:
        with self._db.read() as conn:
            return logs.read_logs(conn, self._scope, (project_id, experiment_id), after_seq, limit)
