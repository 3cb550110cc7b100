"""Resolving the targets of a multi-target write, inside the write's own transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from mltrail.core import validation
from mltrail.core.errors import NotFoundError
from mltrail.core.types import ExperimentRef, Target
from mltrail.store.sql.access import Scope, check_granted_write, experiment_pk
from mltrail.store.sql.weights import visible_links


def resolve_targets(
    conn: Connection, scope: Scope, targets: Sequence[Target]
) -> dict[ExperimentRef, int]:
    """Every experiment the targets name (access-checked), in (project, experiment) order,
    mapped to its row id. A hash names only experiments of projects that are not deleted.

    Raises:
        ValidationError: no target given (field ``experiment``).
        NotFoundError: an unknown experiment, or a hash no visible experiment of a project that
            is not deleted holds (field ``weights_hash``).
        ConflictError: an experiment of a deleted project named by its ids (field ``project``).
    """
    found: dict[ExperimentRef, int] = {}
    for target in validation.as_targets(targets):
        if isinstance(target, ExperimentRef):
            found[target] = experiment_pk(
                conn, scope, target.project_id, target.experiment_id, write=True
            )
            continue
        links = visible_links(conn, scope, target, write=True)
        if not links:
            raise NotFoundError(
                f"no experiment has weights hash {target} (outside deleted projects)",
                "weights_hash",
            )
        for link in links:
            check_granted_write(conn, scope, link.project_id, link.number)
            found[ExperimentRef(link.project_id, link.number)] = link.experiment_id
    return dict(sorted(found.items(), key=lambda item: (item[0].project_id, item[0].experiment_id)))
