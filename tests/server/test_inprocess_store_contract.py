"""The Store contract suite through HttpStore's injectable transport: the real client code and
the real app (validation, auth, error mapping, codec), in-process on SqlStore over SQLite and
PostgreSQL. Fast enough to run on every change of a route."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from store.test_identity_contract import *  # noqa: F403
from store.test_projects_contract import *  # noqa: F403
from store.test_store_contract import *  # noqa: F403 - the suite's tests and fixtures
from support.inprocess import inprocess_store


@pytest.fixture
def store(sql_store: SqlStore) -> Iterator[HttpStore]:
    with inprocess_store(sql_store) as http_store:
        yield http_store
