"""Custom charts: one row per (experiment, chart id); sending the same name replaces it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from mltrail.core.types import Chart, ChartSpec, ExperimentRef, Target
from mltrail.store.charts import ChartStore
from mltrail.store.sql.access import Scope, SqlNoun, dump_json, experiment_pk, load_json
from mltrail.store.sql.engine import Database
from mltrail.store.sql.tables import charts, experiments
from mltrail.store.sql.targets import resolve_targets


def put_chart(
    conn: Connection, db: Database, scope: Scope, targets: Sequence[Target], spec: ChartSpec
) -> list[ExperimentRef]:
    """Create or replace the chart on every experiment the targets name.

    ``spec`` is a checked ChartSpec (``validation.chart`` made it at the entrance): trusted.
    """
    resolved = resolve_targets(conn, scope, targets)
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
    conn.execute(stmt, [{"experiment_id": pk, **values} for pk in resolved.values()])
    return list(resolved)


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


class SqlCharts(SqlNoun, ChartStore):
    """The custom charts half of SqlStore."""

    def put_chart(self, targets: Sequence[Target], chart: ChartSpec) -> list[ExperimentRef]:
        with self._db.write() as conn:
            return put_chart(conn, self._db, self._scope, targets, chart)

    def list_charts(self, project_id: int, experiment_id: int) -> list[Chart]:
        with self._db.read() as conn:
            return list_charts(conn, self._scope, (project_id, experiment_id))
