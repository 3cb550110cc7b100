"""The ``store`` fixture: a fresh SqlStore on SQLite and on PostgreSQL.

``test_store_contract.py`` uses only the Store interface through this fixture, so another
package (HttpStore against a real server) can reuse the suite by overriding ``store``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mltrail.store.base import Store
from mltrail.store.sql import SqlStore


@pytest.fixture
def sql_store(db_url: str) -> Iterator[SqlStore]:
    """A migrated SqlStore on a fresh database (parametrised over sqlite/postgres)."""
    store = SqlStore.open(db_url)
    yield store
    store.close()


@pytest.fixture
def store(sql_store: SqlStore) -> Store:
    return sql_store
