"""Store fixtures every test module may use (a pytest plugin, see tests/conftest.py).

Fixtures:
    sql_store: a migrated SqlStore on a fresh database, on SQLite and on PostgreSQL (a copy of
        one migrated per session: tests/conftest.py's ``migrated_db_url``).
    sqlite_store: the same on SQLite only (tests of the embedded store, agents in-process).
    mode_store: the store a run writes to in each mode: SqlStore on SQLite and PostgreSQL, and
        HttpStore to the session's shared real server on each.

Functions:
    refuse_rows_of: a database trigger refusing one experiment's rows of a table.
    migrate: upgrade or downgrade a database to a revision (tests of a migration).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from mltrail.store.base import Store
from mltrail.store.sql import SqlStore
from mltrail.store.sql.engine import Database, make_engine
from mltrail.store.sql.migrate import MIGRATIONS_DIR
from mltrail.store.sql.tables import experiments


@pytest.fixture
def sql_store(migrated_db_url: str) -> Iterator[SqlStore]:
    """A migrated SqlStore on a fresh database (parametrised over sqlite/postgres)."""
    store = SqlStore.open(migrated_db_url)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(migrated_sqlite_url: str) -> Iterator[SqlStore]:
    """A migrated SqlStore on a fresh SQLite file (``sqlite_url``'s)."""
    store = SqlStore.open(migrated_sqlite_url)
    yield store
    store.close()


@pytest.fixture(params=["embedded-sqlite", "embedded-postgres", "server-sqlite", "server-postgres"])
def mode_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Embedded (SqlStore on a fresh database) or through a real server (HttpStore to the
    session's shared server, whose database outlives the test), on SQLite and PostgreSQL."""
    from mltrail.store.http import HttpStore
    from support.servers import shared_server_for

    mode, database = request.param.split("-")
    if mode == "embedded":
        url = request.getfixturevalue(f"migrated_{'sqlite' if database == 'sqlite' else 'pg'}_url")
        opened: Store = SqlStore.open(url)
    else:
        request.param = database  # shared_server_for reads the database from it
        server = shared_server_for(request)
        opened = HttpStore(server.url, server.admin_token)
    yield opened
    opened.close()


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


def migrate(url: str, revision: str, *, down: bool) -> None:
    """Upgrade (or, ``down``, downgrade) the database at ``url`` to ``revision``."""
    db = Database(make_engine(url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.write() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    db.close()
