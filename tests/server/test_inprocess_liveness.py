"""The liveness and log-text contracts through HttpStore's injectable transport: the real
client code (codec, escaping) and the real app (routes, schemas), in-process on a SqlStore
over SQLite and PostgreSQL with an injected clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from store.test_liveness_contract import *  # noqa: F403 - the suite's tests and fixtures
from store.test_log_text_contract import *  # noqa: F403
from support.inprocess import inprocess_store


@pytest.fixture
def store(judged_sql_store: SqlStore) -> Iterator[HttpStore]:
    with inprocess_store(judged_sql_store) as http_store:
        yield http_store
