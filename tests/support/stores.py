"""Store fixtures every test module may use (a pytest plugin, see tests/conftest.py).

Fixtures:
    sql_store: a migrated SqlStore on a fresh database, on SQLite and on PostgreSQL.
    sqlite_store: the same on SQLite only (tests of the embedded store, agents in-process).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mltrail.store.sql import SqlStore


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
