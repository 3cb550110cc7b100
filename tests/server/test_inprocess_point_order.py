"""The out-of-order points contract (``tests/store/test_point_order.py``) through HttpStore's
injectable transport onto the real app, in-process on SqlStore over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from store.test_point_order import *  # noqa: F403 - the suite's tests and fixtures
from support.inprocess import inprocess_store


@pytest.fixture
def store(sql_store: SqlStore) -> Iterator[HttpStore]:
    with inprocess_store(sql_store) as http_store:
        yield http_store
