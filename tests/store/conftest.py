"""The ``store`` fixture of the contract suite: a fresh SqlStore on SQLite and on PostgreSQL.

``test_store_contract.py`` uses only the Store interface through this fixture, so another
module (HttpStore in-process or against a real server) reuses the suite by overriding ``store``.
"""

from __future__ import annotations

import pytest

from mltrail.store.base import Store
from mltrail.store.sql import SqlStore


@pytest.fixture
def store(sql_store: SqlStore) -> Store:
    return sql_store
