"""Experiment-level ex_ metrics, weights-hash links and per-iteration external metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select

from mltrail.core import validation
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.core.types import ExperimentRef, IterationMetric, JsonScalar, WeightsLink
from mltrail.store.sql.access import Scope, dump_json, experiment_pk, load_json
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import (
    experiments,
    external_metrics,
    iteration_metrics,
    projects,
    weights_links,
)


def resolve_refs(conn: Connection, scope: Scope, refs: Sequence[ExperimentRef]) -> list[int]:
    """Row ids of every ref (access-checked); ValidationError when there are none."""
    if not refs:
        raise ValidationError("no experiment given", "experiment")
    return list(dict.fromkeys(experiment_pk(conn, scope, *_ref(r)) for r in refs))


def _ref(ref: Any) -> tuple[Any, Any]:
    if isinstance(ref, ExperimentRef):
        return ref.project_id, ref.experiment_id
    return ref[0], ref[1]


def put_external_metrics(
    conn: Connection,
    db: Database,
    scope: Scope,
    refs: Sequence[ExperimentRef],
    metrics: Mapping[str, JsonScalar],
) -> None:
    """Upsert the metrics on every experiment, in the caller's single transaction."""
    clean = validation.ex_metrics(metrics)
    pks = resolve_refs(conn, scope, refs)
    now = db.clock()
    stmt = db.insert(external_metrics)
    stmt = stmt.on_conflict_do_update(
        index_elements=["experiment_id", "key"],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )
    rows = [
        {"experiment_id": pk, "key": k, "value": dump_json(v, f"metrics.{k}"), "updated_at": now}
        for pk in pks
        for k, v in clean.items()
    ]
    conn.execute(stmt, rows)


def _optional_int(value: Any, field: str) -> int | None:
    return None if value is None else validation.require_int(value, field, minimum=0)


def _links_query() -> Any:
    return select(
        weights_links.c.weights_hash,
        experiments.c.project_id,
        experiments.c.number,
        weights_links.c.iteration,
        weights_links.c.epoch,
        weights_links.c.created_at,
        weights_links.c.experiment_id,
    ).join(experiments, experiments.c.id == weights_links.c.experiment_id)


def _to_link(row: Any) -> WeightsLink:
    return WeightsLink(row[0], row[1], row[2], row[3], row[4], row[5])


def link_weights_hash(
    conn: Connection,
    db: Database,
    scope: Scope,
    ref: tuple[Any, Any],
    weights_hash: Any,
    point: tuple[Any, Any],
) -> WeightsLink:
    """Link the hash to (experiment, iteration, epoch); linking twice keeps one link."""
    digest = validation.weights_hash(weights_hash)
    iteration = _optional_int(point[0], "iteration")
    epoch = _optional_int(point[1], "epoch")
    pk = experiment_pk(conn, scope, *ref)
    existing = conn.execute(
        _links_query().where(
            weights_links.c.experiment_id == pk,
            weights_links.c.weights_hash == digest,
            weights_links.c.iteration.is_not_distinct_from(iteration),
            weights_links.c.epoch.is_not_distinct_from(epoch),
        )
    ).first()
    if existing is not None:
        return _to_link(existing)
    now = db.clock()
    conn.execute(
        weights_links.insert().values(
            weights_hash=digest, experiment_id=pk, iteration=iteration, epoch=epoch, created_at=now
        )
    )
    number = conn.execute(select(experiments.c.number).where(experiments.c.id == pk)).scalar_one()
    return WeightsLink(digest, int(ref[0]), int(number), iteration, epoch, now)


def _visible_links(conn: Connection, scope: Scope, digest: str) -> list[Any]:
    query = (
        _links_query()
        .join(projects, projects.c.id == experiments.c.project_id)
        .where(weights_links.c.weights_hash == digest, scope.visible_projects())
        .order_by(weights_links.c.id)
    )
    return list(conn.execute(query).all())


def find_weights_hash(conn: Connection, scope: Scope, weights_hash: Any) -> list[WeightsLink]:
    return [_to_link(r) for r in _visible_links(conn, scope, validation.weights_hash(weights_hash))]


def list_weights_links(conn: Connection, scope: Scope, ref: tuple[Any, Any]) -> list[WeightsLink]:
    pk = experiment_pk(conn, scope, *ref)
    query = _links_query().where(weights_links.c.experiment_id == pk).order_by(weights_links.c.id)
    return [_to_link(r) for r in conn.execute(query)]


def put_iteration_metrics(
    conn: Connection, db: Database, scope: Scope, weights_hash: Any, metrics: Mapping[str, Any]
) -> int:
    """Attach metrics to every visible link of the hash; returns the number of links touched.

    Raises:
        NotFoundError: no visible experiment holds the hash (field ``weights_hash``).
    """
    digest = validation.weights_hash(weights_hash)
    clean = validation.ex_metrics(metrics)
    links = _visible_links(conn, scope, digest)
    if not links:
        raise NotFoundError(f"no experiment holds weights hash {digest}", "weights_hash")
    now = db.clock()
    rows = []
    for link in links:
        pk, iteration, epoch = link.experiment_id, link.iteration, link.epoch
        conn.execute(
            delete(iteration_metrics).where(
                iteration_metrics.c.experiment_id == pk,
                iteration_metrics.c.weights_hash == digest,
                iteration_metrics.c.key.in_(list(clean)),
                iteration_metrics.c.iteration.is_not_distinct_from(iteration),
                iteration_metrics.c.epoch.is_not_distinct_from(epoch),
            )
        )
        for key, value in clean.items():
            rows.append(
                {
                    "experiment_id": pk,
                    "key": key,
                    "iteration": iteration,
                    "epoch": epoch,
                    "value": dump_json(value, f"metrics.{key}"),
                    "weights_hash": digest,
                    "updated_at": now,
                }
            )
    conn.execute(iteration_metrics.insert(), rows)
    return len(links)


def read_iteration_metrics(
    conn: Connection, scope: Scope, ref: tuple[Any, Any]
) -> list[IterationMetric]:
    pk = experiment_pk(conn, scope, *ref)
    t = iteration_metrics.c
    query = (
        select(t.key, t.iteration, t.epoch, t.value, t.weights_hash)
        .where(t.experiment_id == pk)
        .order_by(t.iteration, t.epoch, t.key, t.id)
    )
    return [
        IterationMetric(key, iteration, epoch, load_json(value), digest)
        for key, iteration, epoch, value, digest in conn.execute(query)
    ]
