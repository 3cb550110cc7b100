"""Archive, trash, restore and purge experiments (rules in ``core/lifecycle.py``).

A purge deletes the experiment's row; every table that belongs to an experiment references it
``ON DELETE CASCADE`` (series and their chunks and rollups, ingest batches, ex_ metrics,
iteration metrics, charts, log lines, weights links, artifact paths, jobs, the searchable
copies), so one DELETE removes everything in the same transaction. Blobs that no other
artifact references are deleted after the commit, each while holding its row
(``artifacts.collect_blob``), as the garbage collector does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from mltrail.core.errors import ConflictError
from mltrail.core.lifecycle import Lifecycle
from mltrail.core.types import Experiment, Status
from mltrail.store.artifacts import BlobStore
from mltrail.store.sql.access import Scope, SqlNoun, check_project, experiment_pk
from mltrail.store.sql.artifacts import collect_blob
from mltrail.store.sql.experiment_rows import get_experiment
from mltrail.store.sql.liveness import Judge
from mltrail.store.sql.tables import agents, artifacts, experiments, jobs, projects


def set_state(
    conn: Connection, scope: Scope, judge: Judge, ref: tuple[Any, Any], state: Lifecycle
) -> Experiment:
    """Move the experiment to ``state``; a restore from the trash must come within the
    retention (``judge`` carries now; the database its retention)."""
    pk = experiment_pk(conn, scope, *ref)
    c = experiments.c
    values: dict[str, Any] = {"state": state.value, "updated_at": judge.now}
    values["deleted_at"] = judge.now if state is Lifecycle.DELETED else None
    conn.execute(update(experiments).where(c.id == pk).values(**values))
    return get_experiment(conn, scope, ref, judge)


def check_restorable(conn: Connection, scope: Scope, ref: tuple[Any, Any], cutoff: float) -> None:
    """ConflictError when the experiment sat in the trash since before ``cutoff``."""
    pk = experiment_pk(conn, scope, *ref)
    c = experiments.c
    deleted_at = conn.execute(select(c.deleted_at).where(c.id == pk)).scalar()
    if deleted_at is not None and deleted_at < cutoff:
        raise ConflictError(
            f"experiment {ref[1]} was in the trash for longer than the retention; "
            "it can only be purged",
            "experiment",
        )


def purge_rows(conn: Connection, judge: Judge, pk: int, number: int) -> list[str]:
    """Delete one experiment and what it owns; the digests its artifacts used.

    Raises:
        ConflictError: it is queued or running (stop it first).
    """
    status = conn.execute(select(judge.status()).where(experiments.c.id == pk)).scalar()
    if status in (Status.RUNNING.value, Status.QUEUED.value):
        raise ConflictError(
            f"experiment {number} is {status}: stop it before purging", "experiment"
        )
    digests = conn.execute(
        select(artifacts.c.sha256).where(artifacts.c.experiment_id == pk).distinct()
    ).scalars()
    found = list(digests)
    job_ids = select(jobs.c.id).where(jobs.c.experiment_id == pk)
    conn.execute(update(agents).where(agents.c.job_id.in_(job_ids)).values(job_id=None))
    owner = select(experiments.c.project_id).where(experiments.c.id == pk).scalar_subquery()
    conn.execute(
        update(projects)
        .where(projects.c.id == owner)
        .values(purged_experiments=projects.c.purged_experiments + 1)
    )
    conn.execute(experiments.delete().where(experiments.c.id == pk))
    return found


def expired_in_project(conn: Connection, scope: Scope, project_id: Any, cutoff: float) -> list[Any]:
    """(row id, number) of the project's trashed experiments whose retention ran out."""
    pid = check_project(conn, scope, project_id)
    c = experiments.c
    query = select(c.id, c.number).where(
        c.project_id == pid, c.state == Lifecycle.DELETED.value, c.deleted_at < cutoff
    )
    return list(conn.execute(query).all())


class SqlLifecycle(SqlNoun):
    """The lifecycle methods of SqlStore's experiments (archive, trash, restore, purge)."""

    _blobs: BlobStore | None

    def _set_state(self, project_id: int, experiment_id: int, state: Lifecycle) -> Experiment:
        with self._db.write() as conn:
            ref = (project_id, experiment_id)
            if state is Lifecycle.ACTIVE:
                check_restorable(conn, self._scope, ref, self._now() - self._db.trash_retention)
            return set_state(conn, self._scope, self._judge(), ref, state)

    def delete_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        moved = self._set_state(project_id, experiment_id, Lifecycle.DELETED)
        self._purge_expired(project_id)
        return moved

    def archive_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        return self._set_state(project_id, experiment_id, Lifecycle.ARCHIVED)

    def restore_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        return self._set_state(project_id, experiment_id, Lifecycle.ACTIVE)

    def purge_experiment(self, project_id: int, experiment_id: int) -> int:
        with self._db.write() as conn:
            pk = experiment_pk(conn, self._scope, project_id, experiment_id)
            digests = purge_rows(conn, self._judge(), pk, experiment_id)
        return self._release_blobs(digests)

    def _purge_expired(self, project_id: int) -> None:
        """Purge the project's trashed experiments whose retention ran out (a running one
        stays until it ends)."""
        with self._db.read() as conn:
            cutoff = self._now() - self._db.trash_retention
            expired = expired_in_project(conn, self._scope, project_id, cutoff)
        for pk, number in expired:
            try:
                with self._db.write() as conn:
                    digests = purge_rows(conn, self._judge(), pk, number)
            except ConflictError:
                continue
            self._release_blobs(digests)

    def _release_blobs(self, digests: list[str]) -> int:
        if self._blobs is None:
            return 0
        return sum(collect_blob(self._db, self._blobs, d) is not None for d in digests)
