"""Custom charts: one row per (experiment, chart id); sending the same name replaces it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from mltrail.core import validation
from mltrail.core.types import Chart, ChartSpec, ExperimentRef
from mltrail.store.sql.access import Scope, dump_json, experiment_pk, load_json
from mltrail.store.sql.engine import Database
from mltrail.store.sql.external import resolve_refs
from mltrail.store.sql.tables import charts, experiments


def _revalidate(spec: ChartSpec) -> ChartSpec:
    """Check a spec again: it may have been rebuilt from a request body."""
    return validation.chart(
        spec.name,
        chart_x_name=spec.x_name,
        chart_y_name=list(spec.y_names),
        chart_scope=spec.scope,
        chart_type=spec.type,
        chart_x=list(spec.x),
        chart_y=[list(row) for row in spec.y],
    )


def put_chart(
    conn: Connection, db: Database, scope: Scope, refs: Sequence[ExperimentRef], spec: ChartSpec
) -> None:
    """Create or replace the chart on every experiment in ``refs``."""
    spec = _revalidate(spec)
    pks = resolve_refs(conn, scope, refs)
    values = {
        "chart_id": spec.chart_id,
        "name": spec.name,
        "scope": spec.scope,
        "type": spec.type,
        "x_name": spec.x_name,
        "y_names": dump_json(list(spec.y_names), "chart_y_name"),
        "x": dump_json(list(spec.x), "chart_x"),
        "y": dump_json([list(r) for r in spec.y], "chart_y"),
        "updated_at": db.clock(),
    }
    stmt = db.insert(charts)
    stmt = stmt.on_conflict_do_update(
        index_elements=["experiment_id", "chart_id"],
        set_={k: stmt.excluded[k] for k in values if k != "chart_id"},
    )
    conn.execute(stmt, [{"experiment_id": pk, **values} for pk in pks])


def list_charts(conn: Connection, scope: Scope, ref: tuple[Any, Any]) -> list[Chart]:
    pk = experiment_pk(conn, scope, *ref)
    query = (
        select(charts, experiments.c.project_id, experiments.c.number)
        .join(experiments, experiments.c.id == charts.c.experiment_id)
        .where(charts.c.experiment_id == pk)
        .order_by(charts.c.name)
    )
    return [_to_chart(r) for r in conn.execute(query)]


def _to_chart(row: Any) -> Chart:
    spec = ChartSpec(
        name=row.name,
        scope=row.scope,
        type=row.type,
        x_name=row.x_name,
        y_names=tuple(load_json(row.y_names)),
        x=tuple(load_json(row.x)),
        y=tuple(tuple(r) for r in load_json(row.y)),
    )
    return Chart(row.chart_id, row.project_id, row.number, spec, row.updated_at)
