"""Experiment rows read into :class:`~mltrail.core.types.Experiment`: one by number, the
project's latest, or any set of row ids with their metric summaries and ex_ metrics in three
queries (no N+1), the status as a :class:`~mltrail.store.sql.liveness.Judge` reports it.

Every read of an experiment (SqlExperiments, search, lifecycle, jobs) goes through
:func:`load_experiments`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, select

from mltrail.core.errors import NotFoundError
from mltrail.core.types import Experiment, Status, assemble
from mltrail.store.sql.access import (
    Scope,
    check_project,
    experiment_pk,
    fetch_tuples,
    load_json_all,
)
from mltrail.store.sql.liveness import Judge
from mltrail.store.sql.tables import experiments, external_metrics, metric_series


def judged(conn: Connection, judge: Judge, pk: int) -> Experiment:
    """The experiment of row id ``pk`` as ``judge`` reads it."""
    return load_experiments(conn, select(experiments.c.id).where(experiments.c.id == pk), judge)[0]


def get_experiment(
    conn: Connection, scope: Scope, ref: tuple[Any, Any], judge: Judge
) -> Experiment:
    pk = experiment_pk(conn, scope, *ref)
    return judged(conn, judge, pk)


def latest_experiment(conn: Connection, scope: Scope, project_id: Any, judge: Judge) -> Experiment:
    pid = check_project(conn, scope, project_id)
    ids = (
        select(experiments.c.id)
        .where(experiments.c.project_id == pid)
        .order_by(experiments.c.number.desc())
        .limit(1)
    )
    found = load_experiments(conn, ids, judge)
    if not found:
        raise NotFoundError(f"project {pid} has no experiments", "experiment")
    return found[0]


def load_experiments(conn: Connection, ids: Select[Any], judge: Judge) -> list[Experiment]:
    """Experiments whose row ids ``ids`` selects, with metric summaries and ex_ metrics, their
    status as ``judge`` reports it.

    One query each for experiments, summaries and ex metrics (no N+1), each fetched as the
    driver's tuples (every column is a plain number or text), the JSON columns of all rows
    parsed at once.
    """
    id_subquery = ids.subquery()
    columns = [judge.status() if n == "status" else experiments.c[n] for n in _FIELDS]
    rows = fetch_tuples(
        conn,
        select(*columns)
        .where(experiments.c.id.in_(select(id_subquery.c.id)))
        .order_by(experiments.c.number),
    )
    metrics: dict[int, dict[str, float]] = {r[0]: {} for r in rows}
    ex: dict[int, dict[str, Any]] = {r[0]: {} for r in rows}
    s = metric_series.c  # "<phase>/<key>" made in the query: one string a row, not three
    summaries = select(s.experiment_id, (s.phase + "/" + s.key).label("name"), s.last_value)
    summaries = summaries.where(s.experiment_id.in_(select(id_subquery.c.id)))
    for sid, name, last in fetch_tuples(conn, summaries):
        metrics[sid][name] = float("nan") if last is None else last
    ex_rows = select(
        external_metrics.c.experiment_id, external_metrics.c.key, external_metrics.c.value
    ).where(external_metrics.c.experiment_id.in_(select(id_subquery.c.id)))
    found = fetch_tuples(conn, ex_rows)
    for (eid, key, _), value in zip(found, load_json_all([r[2] for r in found]), strict=True):
        ex[eid][key] = value
    parsed = load_json_all([r[i] for r in rows for i in _JSON_AT])
    return [
        _to_experiment(r, parsed[4 * k : 4 * k + 4], metrics[r[0]], ex[r[0]])
        for k, r in enumerate(rows)
    ]


_STATUSES = {s.value: s for s in Status}


# the columns load_experiments reads, in the order _to_experiment unpacks them
_FIELDS = (
    "id",
    "project_id",
    "number",
    "display_name",
    "description",
    "status",
    "created_at",
    "started_at",
    "ended_at",
    "hyperparameters",
    "environment",
    "source",
    "tags",
    "stop_requested",
    "last_heartbeat",
    "notes",
    "state",
    "deleted_at",
)
# where the JSON columns are (hyperparameters, environment, source, tags), parsed together
_JSON_AT = tuple(_FIELDS.index(n) for n in ("hyperparameters", "environment", "source", "tags"))


def _to_experiment(
    row: tuple[Any, ...], parsed: list[Any], metrics: dict[str, float], ex: dict[str, Any]
) -> Experiment:
    # plain tuple unpacking: Row attribute or mapping access costs more x 1,000 rows
    (
        _,
        pid,
        number,
        name,
        description,
        status,
        created,
        started,
        ended,
        _hp,
        _env,
        _src,
        _tags,
        stop,
        heartbeat,
        notes,
        state,
        deleted_at,
    ) = row
    hp, env, src, tags = parsed
    return assemble(
        Experiment,
        {
            "project_id": pid,
            "experiment_id": number,
            "display_name": name,
            "description": description,
            "status": _STATUSES[status],
            "created_at": created,
            "started_at": started,
            "ended_at": ended,
            "hyperparameters": hp,
            "environment": env,
            "source": src,
            "tags": tuple(tags),
            "metrics": dict(sorted(metrics.items())),
            "ex_metrics": dict(sorted(ex.items())) if ex else {},
            "stop_requested": bool(stop),
            "last_heartbeat": heartbeat,
            "notes": notes,
            "state": state,
            "deleted_at": deleted_at,
        },
    )
