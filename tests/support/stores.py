"""Store fixtures every test module may use (a pytest plugin, see tests/conftest.py).

Fixtures:
    sql_store: a migrated SqlStore on a fresh database, on SQLite and on PostgreSQL.
    sqlite_store: the same on SQLite only (tests of the embedded store, agents in-process).

Functions:
    refuse_rows_of: a database trigger refusing one experiment's rows of a table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from mltrail.store.sql import SqlStore
from mltrail.store.sql.tables import experiments


@pytest.fixture
def sql_store(db_url: str) -> Iterator[SqlStore]:
    """A migrated SqlStore on a fresh database (parametrised over sqlite/postgres)."""
    store = SqlStore.open(db_url)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlStore]:
    """A migrated SqlStore on a fresh SQLite file."""
    store = SqlStore.open(sqlite_url)
    yield store
    store.close()


def refuse_rows_of(sql: SqlStore, table: str, project: int, number: int) -> None:
    """A trigger that makes the database refuse ``table`` rows of that experiment: a write
    that touches it fails inside its transaction (all-or-nothing tests)."""
    with sql._db.write() as conn:
        pk = conn.execute(
            select(experiments.c.id).where(
                experiments.c.project_id == project, experiments.c.number == number
            )
        ).scalar_one()
        if sql._db.is_sqlite:
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    f"WHEN NEW.experiment_id = {pk} "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
            return
        conn.execute(
            text(
                f"CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.experiment_id = {pk} THEN RAISE EXCEPTION 'refused by the test'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
            )
        )
