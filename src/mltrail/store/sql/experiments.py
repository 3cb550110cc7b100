"""Experiments: atomic per-project numbering, field and status changes, resume, stop requests
and heartbeats; rows are read into Experiments by ``experiment_rows.py``, with the crashed
status judged at read time (see ``core/liveness.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from mltrail.core import lifecycle, validation
from mltrail.core.errors import ConflictError, ValidationError
from mltrail.core.lifecycle import Lifecycle, check_status_change
from mltrail.core.liveness import Liveness, revival_note, stop_grace
from mltrail.core.query import Query
from mltrail.core.types import Experiment, LogLine, Page, Status
from mltrail.store.experiments import LIST_PAGE_SIZE, ExperimentStore
from mltrail.store.sql.access import (
    Scope,
    SqlNoun,
    check_project,
    dump_json,
    experiment_pk,
    load_json,
)
from mltrail.store.sql.engine import Database
from mltrail.store.sql.experiment_rows import get_experiment, judged, latest_experiment
from mltrail.store.sql.liveness import Judge
from mltrail.store.sql.logs import append_note
from mltrail.store.sql.query import param_rows
from mltrail.store.sql.search import search_experiments
from mltrail.store.sql.tables import (
    experiment_params,
    experiment_tags,
    experiments,
    projects,
)

_JSON_FIELDS = ("hyperparameters", "environment", "source")


def _mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"must be a mapping, got {type(value).__name__}", field)
    return {str(k): v for k, v in value.items()}


def _tags(value: Any, field: str = "tags") -> list[str]:
    tags = validation.sequence_of(
        list(value) if isinstance(value, (set, frozenset, tuple)) else value, field
    )
    checked = [validation.require_text(t, field, min_len=1, max_len=250) for t in tags]
    return list(dict.fromkeys(checked))


def _index_params(conn: Connection, pk: int, hyperparameters: dict[str, Any], fresh: bool) -> None:
    """Keep ``experiment_params`` (the searchable copy of the hyperparameters) in step."""
    if not fresh:
        conn.execute(experiment_params.delete().where(experiment_params.c.experiment_id == pk))
    rows = param_rows(pk, hyperparameters)
    if rows:
        conn.execute(experiment_params.insert(), rows)


def _index_tags(conn: Connection, pk: int, tags: list[str], fresh: bool) -> None:
    if not fresh:
        conn.execute(experiment_tags.delete().where(experiment_tags.c.experiment_id == pk))
    if tags:
        conn.execute(experiment_tags.insert(), [{"experiment_id": pk, "tag": t} for t in tags])


def create_experiment(
    conn: Connection, scope: Scope, judge: Judge, project_id: Any, fields: dict[str, Any]
) -> Experiment:
    """Take the project's next number (``UPDATE ... RETURNING`` locks the counter) and insert;
    with a ``client_id`` already stored, return that experiment instead."""
    now = judge.now
    pid = check_project(conn, scope, project_id)
    client_id = fields.get("client_id")
    if client_id is not None:
        client_id = validation.client_run_id(client_id)
        found = _created_before(conn, pid, client_id)
        if found is not None:
            return judged(conn, judge, found)
    status = validation.status(fields.get("status") or Status.RUNNING)
    tags = _tags(fields.get("tags") or ())
    hyperparameters = _mapping(fields.get("hyperparameters") or {}, "hyperparameters")
    values: dict[str, Any] = {
        "description": validation.experiment_description(fields.get("description")),
        "tags": dump_json(tags, "tags"),
        "hyperparameters": dump_json(hyperparameters, "hyperparameters"),
    }
    for name in ("environment", "source"):
        values[name] = dump_json(_mapping(fields.get(name) or {}, name), name)
    display_name = fields.get("display_name")
    if display_name is not None:
        display_name = validation.experiment_name(display_name)
    counter = conn.execute(
        update(projects)
        .where((projects.c.id == pid) & projects.c.deleted_at.is_(None))
        .values(next_experiment=projects.c.next_experiment + 1)
        .returning(projects.c.next_experiment)
    ).scalar()
    if counter is None:
        raise ConflictError(f"project {pid} is deleted; restore it first", "project")
    number = counter - 1
    pk = conn.execute(
        experiments.insert()
        .values(
            project_id=pid,
            number=number,
            display_name=display_name or f"experiment-{number}",
            status=status.value,
            created_at=now,
            updated_at=now,
            started_at=_time(fields.get("started_at"), "started_at", status == Status.RUNNING, now),
            ended_at=_time(fields.get("ended_at"), "ended_at", status.is_final, now),
            stop_requested=False,
            log_count=0,
            client_id=client_id,
            **values,
        )
        .returning(experiments.c.id)
    ).scalar_one()
    _index_params(conn, pk, hyperparameters, fresh=True)
    _index_tags(conn, pk, tags, fresh=True)
    return judged(conn, judge, pk)


def _time(value: Any, field: str, default_now: bool, now: float) -> float | None:
    """A given start or end time (finite unix seconds), else now when the status implies one."""
    if value is None:
        return now if default_now else None
    return _seconds(value, field)


def _seconds(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"must be a finite number of unix seconds, got {value!r}", field)
    return float(value)


def _created_before(conn: Connection, pid: int, client_id: str) -> int | None:
    """The experiment a run started offline already created (its row id), or None.

    The project's row is locked first (PostgreSQL; SQLite writes are serialised anyway), so two
    uploads of the same run queue here and the second finds the first's experiment."""
    conn.execute(select(projects.c.id).where(projects.c.id == pid).with_for_update())
    c = experiments.c
    row = conn.execute(select(c.id, c.project_id).where(c.client_id == client_id)).first()
    if row is None:
        return None
    if row.project_id != pid:
        raise ConflictError(
            f"run {client_id} was created in project {row.project_id}, not {pid}", "client_id"
        )
    return int(row.id)


def apply_changes(
    conn: Connection,
    scope: Scope,
    judge: Judge,
    ref: tuple[Any, Any],
    changes: dict[str, Any],
    *,
    internal: bool = False,
) -> int:
    """Apply changes; JSON fields merge into the old ones; status moves set timestamps.
    Refused while the project is deleted, except the ``internal`` moves of a job's run.

    Returns:
        The experiment's row id (reading it back, three queries, is the caller's choice).
    """
    now = judge.now
    pk = experiment_pk(conn, scope, *ref, write=not internal)
    row = conn.execute(select(experiments).where(experiments.c.id == pk).with_for_update()).one()
    values: dict[str, Any] = {"updated_at": now}
    if changes.get("display_name") is not None:
        values["display_name"] = validation.experiment_name(changes["display_name"])
    if changes.get("description") is not None:
        values["description"] = validation.experiment_description(changes["description"])
    if changes.get("notes") is not None:
        values["notes"] = validation.experiment_notes(changes["notes"])
    tags = _changed_tags(row, changes)
    if tags is not None:
        values["tags"] = dump_json(tags, "tags")
        _index_tags(conn, pk, tags, fresh=False)
    for name in _JSON_FIELDS:
        if changes.get(name) is not None:
            old, new = load_json(getattr(row, name), {}), _mapping(changes[name], name)
            if name == "hyperparameters" and changes.get("keep_hyperparameters"):
                _check_kept(old, new)
            merged = {**old, **new}
            values[name] = dump_json(merged, name)
            if name == "hyperparameters":
                _index_params(conn, pk, merged, fresh=False)
    if changes.get("status") is not None:
        status = validation.status(changes["status"])
        # ``rerun``: a job's claim or retry, the scheduler moving its own run (a user's resume
        # is resume_experiment, which SqlExperiments.update_experiment calls for resume=True)
        check_status_change(Status(row.status), status, resume=bool(changes.get("rerun")))
        values.update(_status_change(row, status, now))
    if changes.get("ended_at") is not None:
        values["ended_at"] = _given_end(changes["ended_at"], values.get("status", row.status))
    conn.execute(update(experiments).where(experiments.c.id == pk).values(**values))
    return pk


def _check_kept(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse changing a hyperparameter already set (``keep_hyperparameters``)."""
    for key, value in new.items():
        if key in old and not _same_value(old[key], value):
            raise ValidationError(
                f"{key!r} is already {old[key]!r} and is kept, got {value!r}", "hyperparameters"
            )


def _same_value(a: Any, b: Any) -> bool:
    """``a == b``, except that a NaN is the same as a NaN (a value sent again), at any depth."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _changed_tags(row: Any, changes: dict[str, Any]) -> list[str] | None:
    """The new tags: ``tags`` replaces, then ``add_tags`` / ``remove_tags``; None: unchanged."""
    added = _tags(changes.get("add_tags") or (), "add_tags")
    removed = set(_tags(changes.get("remove_tags") or (), "remove_tags"))
    if changes.get("tags") is None and not added and not removed:
        return None
    base = _tags(changes["tags"]) if changes.get("tags") is not None else load_json(row.tags, [])
    return [t for t in dict.fromkeys([*base, *added]) if t not in removed]


def _given_end(value: Any, status: str) -> float:
    """The end time a client gave (finite unix seconds), for a run that is (or is becoming)
    finished: a running or queued run has no end time."""
    ended = _seconds(value, "ended_at")
    if not Status(status).is_final:
        raise ValidationError(f"is only kept for a finished run; this one is {status}", "ended_at")
    return ended


def _status_change(row: Any, status: Status, now: float) -> dict[str, Any]:
    values: dict[str, Any] = {"status": status.value}
    if status == Status.RUNNING:
        values["started_at"] = row.started_at or now
        values["ended_at"] = None
    elif status.is_final and row.status != status.value:
        values["ended_at"] = now
    elif status == Status.QUEUED:
        values["ended_at"] = None
    return values


def resume_experiment(
    conn: Connection,
    db: Database,
    scope: Scope,
    judge: Judge,
    ref: tuple[Any, Any],
    status: Status = Status.RUNNING,
) -> Experiment:
    """The one resume (``POST .../resume``, ``PATCH {"resume": true}``, MLflow's run of a
    finished run): the experiment goes back to ``status`` (running, or queued) from any status,
    its start time kept, its end time and stop request cleared, and a ``mltrail`` INFO line in
    its logs says it was resumed and from which status. A run that heartbeated before gets a
    heartbeat now (its old one would read crashed at once); one that never did stays unjudged
    (``core.liveness``). A run in the trash, or of a deleted project, is refused
    (ConflictError): restore it first."""
    pk = experiment_pk(conn, scope, *ref, write=True)
    c = experiments.c
    conn.execute(select(c.id).where(c.id == pk).with_for_update()).one()  # lock, then judge
    row = conn.execute(
        select(judge.status().label("status"), c.started_at, c.state, c.last_heartbeat).where(
            c.id == pk
        )
    ).one()
    if row.state == Lifecycle.DELETED.value:
        raise ConflictError(
            f"experiment {ref[1]} is in the trash: restore it before resuming", "experiment"
        )
    values = {**_status_change(row, status, judge.now), "stop_requested": False}
    if status == Status.RUNNING and row.last_heartbeat is not None:
        values["last_heartbeat"] = judge.now
    conn.execute(update(experiments).where(c.id == pk).values(updated_at=judge.now, **values))
    note = LogLine(judge.now, "mltrail", "INFO", f"run resumed (was {row.status})")
    append_note(conn, db, pk, note)
    return judged(conn, judge, pk)


def request_stop(conn: Connection, scope: Scope, judge: Judge, ref: tuple[Any, Any]) -> Experiment:
    """Flag the experiment for stopping; ConflictError when it already ended.

    A run nobody can stop any more is recorded ``stopped`` at once, ending its followers: one
    that reads crashed, or a running one without a job's live lease that has not heartbeated
    for :func:`~mltrail.core.liveness.stop_grace` seconds (or never did: a client that does
    not heartbeat does not watch for stop requests either). It ended at its last heartbeat.
    """
    pk = experiment_pk(conn, scope, *ref)
    c = experiments.c
    conn.execute(select(c.id).where(c.id == pk).with_for_update()).one()  # lock, then judge
    grace = stop_grace(judge.crash_after)
    silent = or_(c.last_heartbeat.is_(None), c.last_heartbeat < judge.now - grace)
    row = conn.execute(
        select(
            judge.status().label("status"),
            c.last_heartbeat,
            and_(c.status == Status.RUNNING.value, silent, ~judge.leased()).label("dead"),
        ).where(c.id == pk)
    ).one()
    status = Status(row.status)
    values: dict[str, Any] = {"stop_requested": True, "updated_at": judge.now}
    if status is Status.CRASHED or row.dead:
        ended = judge.now if row.last_heartbeat is None else min(row.last_heartbeat, judge.now)
        values.update(status=Status.STOPPED.value, ended_at=ended)
    elif status.is_final:
        raise ConflictError(f"experiment {ref[1]} already ended ({status.value})", "experiment")
    conn.execute(update(experiments).where(c.id == pk).values(**values))
    return judged(conn, judge, pk)


def record_heartbeat(
    conn: Connection, db: Database, scope: Scope, judge: Judge, ref: tuple[Any, Any]
) -> Liveness:
    """Record that the run is alive now. A run that read crashed reads running again, and a
    ``mltrail`` WARNING line in its logs says how long it was silent."""
    pk = experiment_pk(conn, scope, *ref)
    c = experiments.c
    row = conn.execute(select(c.status, c.last_heartbeat).where(c.id == pk)).one()
    conn.execute(update(experiments).where(c.id == pk).values(last_heartbeat=judge.now))
    silent = None if row.last_heartbeat is None else judge.now - row.last_heartbeat
    if row.status == Status.RUNNING.value and silent is not None and silent > judge.crash_after:
        note = LogLine(judge.now, "mltrail", "WARNING", revival_note(silent, judge.crash_after))
        append_note(conn, db, pk, note)
    return Liveness(Status(row.status), judge.now, judge.crash_after)


class SqlExperiments(SqlNoun, ExperimentStore):
    """The experiments half of SqlStore."""

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
        fields = {
            "client_id": client_id,
            "started_at": started_at,
            "ended_at": ended_at,
            "display_name": display_name,
            "description": description,
            "hyperparameters": hyperparameters,
            "environment": environment,
            "source": source,
            "tags": tags,
            "status": status,
        }
        with self._db.write() as conn:
            return create_experiment(conn, self._scope, self._judge(), project_id, fields)

    def get_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        with self._db.read() as conn:
            return get_experiment(conn, self._scope, (project_id, experiment_id), self._judge())

    def list_experiments(
        self, project_id: int, *, offset: int = 0, limit: int = LIST_PAGE_SIZE
    ) -> Page:
        return self.search_experiments(project_id, offset=offset, limit=limit)

    def search_experiments(
        self,
        project_id: int,
        query: Query | None = None,
        *,
        offset: int = 0,
        limit: int = LIST_PAGE_SIZE,
        include: tuple[Lifecycle, ...] = (Lifecycle.ACTIVE,),
    ) -> Page:
        checked = query if isinstance(query, Query) else Query()
        states = lifecycle.include(include)
        with self._db.read() as conn:
            pid = check_project(conn, self._scope, project_id)
            return search_experiments(conn, self._judge(), pid, checked, (offset, limit), states)

    def latest_experiment(self, project_id: int) -> Experiment:
        with self._db.read() as conn:
            return latest_experiment(conn, self._scope, project_id, self._judge())

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
        changes = {
            "status": status,
            "display_name": display_name,
            "description": description,
            "hyperparameters": hyperparameters,
            "environment": environment,
            "source": source,
            "tags": tags,
            "notes": notes,
            "add_tags": add_tags,
            "remove_tags": remove_tags,
            "ended_at": ended_at,
            "keep_hyperparameters": keep_hyperparameters,
        }
        with self._db.write() as conn:
            ref, judge = (project_id, experiment_id), self._judge()
            moved = None if status is None else validation.status(status)
            if resume and moved is not None and not moved.is_final:
                resume_experiment(conn, self._db, self._scope, judge, ref, moved)
                changes["status"] = None  # resumed: the other changes apply on top
            return judged(conn, judge, apply_changes(conn, self._scope, judge, ref, changes))

    def record_status(self, project_id: int, experiment_id: int, status: Status) -> None:
        with self._db.write() as conn:
            ref, changes = (project_id, experiment_id), {"status": status}
            apply_changes(conn, self._scope, self._judge(), ref, changes)

    def request_stop(self, project_id: int, experiment_id: int) -> Experiment:
        with self._db.write() as conn:
            return request_stop(conn, self._scope, self._judge(), (project_id, experiment_id))

    def resume_experiment(self, project_id: int, experiment_id: int) -> Experiment:
        with self._db.write() as conn:
            ref = (project_id, experiment_id)
            return resume_experiment(conn, self._db, self._scope, self._judge(), ref)

    def record_heartbeat(self, project_id: int, experiment_id: int) -> Liveness:
        with self._db.write() as conn:
            ref = (project_id, experiment_id)
            return record_heartbeat(conn, self._db, self._scope, self._judge(), ref)
