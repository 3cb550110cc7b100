"""Weights-hash links: which (experiment, iteration, epoch) produced a hash."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from mltrail.core import validation
from mltrail.core.points import MAX_EPOCH
from mltrail.core.types import WeightsHash, WeightsLink
from mltrail.store.sql.access import Scope, SqlNoun, experiment_pk
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import artifacts, experiments, projects, weights_links
from mltrail.store.weights import WeightStore


def _optional_int(value: Any, field: str, maximum: int = validation.MAX_INT64) -> int | None:
    return None if value is None else validation.require_int(value, field, minimum=0,
                                                              maximum=maximum)  # fmt: skip


def _checkpoint_path() -> Any:
    """The newest stored checkpoint of the link's experiment holding the link's weights."""
    return (
        select(artifacts.c.path)
        .where(
            artifacts.c.experiment_id == weights_links.c.experiment_id,
            artifacts.c.weights_hash == weights_links.c.weights_hash,
        )
        .order_by(artifacts.c.created_at.desc(), artifacts.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _links_query() -> Any:
    return select(
        weights_links.c.weights_hash,
        experiments.c.project_id,
        experiments.c.number,
        weights_links.c.iteration,
        weights_links.c.epoch,
        weights_links.c.created_at,
        weights_links.c.experiment_id,
        _checkpoint_path().label("checkpoint"),
    ).join(experiments, experiments.c.id == weights_links.c.experiment_id)


def _to_link(row: Any) -> WeightsLink:
    return WeightsLink(row[0], row[1], row[2], row[3], row[4], row[5], row[7])


def _equals(column: Any, value: int | None) -> Any:
    """``column`` equal to ``value``, NULL matching None, in a form an index serves
    (PostgreSQL's ``IS NOT DISTINCT FROM`` scans every link of the hash)."""
    return column.is_(None) if value is None else column == value


def link_weights_hash(
    conn: Connection,
    db: Database,
    scope: Scope,
    ref: tuple[Any, Any],
    weights_hash: Any,
    point: tuple[Any, Any],
) -> WeightsLink:
    """Link the hash to (experiment, iteration, epoch); linking twice keeps one link."""
    digest = validation.as_weights_hash(weights_hash)
    iteration = _optional_int(point[0], "iteration")
    epoch = _optional_int(point[1], "epoch", MAX_EPOCH)  # a 32-bit column
    pk = experiment_pk(conn, scope, *ref, write=True)
    existing = conn.execute(
        _links_query().where(
            weights_links.c.experiment_id == pk,
            weights_links.c.weights_hash == digest,
            _equals(weights_links.c.iteration, iteration),
            _equals(weights_links.c.epoch, epoch),
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


def visible_links_select(scope: Scope, digest: WeightsHash) -> Any:
    """The hash's links that a write may reach: in projects the scope sees and that are not
    deleted (a SELECT of weights_links joined to their experiments, with no checkpoint column:
    set-based writes build on it)."""
    return (
        select(weights_links.c.id, weights_links.c.experiment_id)
        .join(experiments, experiments.c.id == weights_links.c.experiment_id)
        .join(projects, projects.c.id == experiments.c.project_id)
        .where(weights_links.c.weights_hash == digest, scope.visible_projects())
        .where(projects.c.deleted_at.is_(None))
    )


def visible_links(
    conn: Connection, scope: Scope, digest: WeightsHash, *, write: bool = False
) -> list[Any]:
    """Rows of the hash's links in projects the scope sees (``write``: and that are not
    deleted), oldest first; each row has the public ids, ``iteration``, ``epoch`` and the
    experiment's row id (``experiment_id``)."""
    query = (
        _links_query()
        .join(projects, projects.c.id == experiments.c.project_id)
        .where(weights_links.c.weights_hash == digest, scope.visible_projects())
        .order_by(weights_links.c.id)
    )
    if write:
        query = query.where(projects.c.deleted_at.is_(None))
    return list(conn.execute(query).all())


def find_weights_hash(conn: Connection, scope: Scope, weights_hash: Any) -> list[WeightsLink]:
    digest = validation.as_weights_hash(weights_hash)
    return [_to_link(r) for r in visible_links(conn, scope, digest)]


def list_weights_links(conn: Connection, scope: Scope, ref: tuple[Any, Any]) -> list[WeightsLink]:
    pk = experiment_pk(conn, scope, *ref)
    query = _links_query().where(weights_links.c.experiment_id == pk).order_by(weights_links.c.id)
    return [_to_link(r) for r in conn.execute(query)]


class SqlWeights(SqlNoun, WeightStore):
    """The weights-hash half of SqlStore."""

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
            ref, point = (project_id, experiment_id), (iteration, epoch)
            return link_weights_hash(conn, self._db, self._scope, ref, weights_hash, point)

    def find_weights_hash(self, weights_hash: str) -> list[WeightsLink]:
        with self._db.read() as conn:
            return find_weights_hash(conn, self._scope, weights_hash)

    def list_weights_links(self, project_id: int, experiment_id: int) -> list[WeightsLink]:
        with self._db.read() as conn:
            return list_weights_links(conn, self._scope, (project_id, experiment_id))
