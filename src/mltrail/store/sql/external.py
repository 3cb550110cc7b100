"""External (``ex_``) metrics: per experiment, and per (experiment, iteration, epoch) through
a weights hash. Both writes resolve their targets and write in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Double, String, delete, func, literal, select

from mltrail.core import validation
from mltrail.core.errors import NotFoundError
from mltrail.core.types import ExMetrics, ExperimentRef, IterationMetric, JsonScalar, Target
from mltrail.store.external import ExternalStore
from mltrail.store.sql.access import Scope, SqlNoun, dump_json, experiment_pk, load_json
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import external_metrics, iteration_metrics, weights_links
from mltrail.store.sql.targets import resolve_targets
from mltrail.store.sql.weights import visible_links_select


def put_external_metrics(
    conn: Connection,
    db: Database,
    scope: Scope,
    targets: Sequence[Target],
    metrics: ExMetrics,
) -> list[ExperimentRef]:
    """Upsert the metrics on every experiment the targets name, in the caller's transaction."""
    resolved = resolve_targets(conn, scope, targets)
    now = db.clock()
    stmt = db.insert(external_metrics)
    stmt = stmt.on_conflict_do_update(
        index_elements=["experiment_id", "key"],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )
    rows = [
        {"experiment_id": pk, "key": k, "value": dump_json(v, f"metrics.{k}"), "updated_at": now}
        for pk in resolved.values()
        for k, v in metrics.items()
    ]
    conn.execute(stmt, rows)
    return list(resolved)


def put_iteration_metrics(
    conn: Connection, db: Database, scope: Scope, weights_hash: Any, metrics: ExMetrics
) -> int:
    """Attach metrics to every visible link of the hash; returns the number of links touched.

    Set-based, so a hash linked to thousands of epochs costs a few statements and no Python
    per link: the keys' old values for the hash are deleted in the experiments of its visible
    links (links are never removed, so every such row belongs to one of them), then each key
    is inserted for every distinct (experiment, iteration, epoch) by ``INSERT ... SELECT``.

    Raises:
        NotFoundError: no visible experiment holds the hash (field ``weights_hash``).
    """
    digest = validation.as_weights_hash(weights_hash)
    links = visible_links_select(scope, digest)
    touched = conn.execute(select(func.count()).select_from(links.subquery())).scalar_one()
    if not touched:
        raise NotFoundError(
            f"no experiment holds weights hash {digest} (outside deleted projects)",
            "weights_hash",
        )
    t = iteration_metrics.c
    pks = select(links.subquery().c.experiment_id)
    conn.execute(
        delete(iteration_metrics).where(
            t.weights_hash == digest, t.key.in_(list(metrics)), t.experiment_id.in_(pks)
        )
    )
    now = db.clock()
    points = links.with_only_columns(
        weights_links.c.experiment_id, weights_links.c.iteration, weights_links.c.epoch
    ).distinct()
    for key, value in metrics.items():
        constants = (
            literal(key, String).label("key"),
            literal(dump_json(value, f"metrics.{key}"), String).label("value"),
            literal(digest, String).label("weights_hash"),
            literal(now, Double).label("updated_at"),
        )
        columns = ["experiment_id", "iteration", "epoch", "key", "value", "weights_hash"]
        conn.execute(
            iteration_metrics.insert().from_select(
                [*columns, "updated_at"], points.add_columns(*constants)
            )
        )
    return int(touched)


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


class SqlExternal(SqlNoun, ExternalStore):
    """The ex_ metrics half of SqlStore."""

    def put_external_metrics(
        self, targets: Sequence[Target], metrics: ExMetrics | Mapping[str, JsonScalar]
    ) -> list[ExperimentRef]:
        checked = validation.as_ex_metrics(metrics)
        with self._db.write() as conn:
            return put_external_metrics(conn, self._db, self._scope, targets, checked)

    def put_iteration_metrics(
        self, weights_hash: str, metrics: ExMetrics | Mapping[str, JsonScalar]
    ) -> int:
        checked = validation.as_ex_metrics(metrics)
        with self._db.write() as conn:
            return put_iteration_metrics(conn, self._db, self._scope, weights_hash, checked)

    def read_iteration_metrics(self, project_id: int, experiment_id: int) -> list[IterationMetric]:
        with self._db.read() as conn:
            return read_iteration_metrics(conn, self._scope, (project_id, experiment_id))
