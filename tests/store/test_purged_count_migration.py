"""Migration 0026: projects count their purged experiments; the upgrade fills the count from
the rows a project holds, so an existing database's list totals stay exact."""

from __future__ import annotations

from mltrail.core.lifecycle import include
from mltrail.core.types import Status
from mltrail.store.sql import SqlStore
from mltrail.store.sql.engine import Database, make_engine
from support.stores import migrate


def test_the_upgrade_counts_the_experiments_purged_before_it(db_url: str) -> None:
    store = SqlStore.open(db_url)
    p = store.create_project("purged").id
    for _ in range(5):
        store.create_experiment(p, status=Status.DONE)
    store.archive_experiment(p, 4)
    store.close()
    migrate(db_url, "0025_rollup_tails", down=True)
    db = Database(make_engine(db_url))
    with db.write() as conn:  # purged while the database was at 0025: no count kept
        conn.exec_driver_sql(f"DELETE FROM experiments WHERE project_id = {p} AND number < 3")
    db.close()
    store = SqlStore.open(db_url)  # upgraded to the head again
    try:
        assert store.list_experiments(p).total == 2
        assert store.search_experiments(p, include=include("all")).total == 3
        assert store.create_experiment(p).experiment_id == 6
        assert store.list_experiments(p).total == 3
    finally:
        store.close()
