"""The Store contract suite (tests/store/test_store_contract.py) through HttpStore.

HttpStore -> real ``mltrail server`` subprocess -> SqlStore, on SQLite and on PostgreSQL. Each
test runs as a fresh non-admin user of a session-wide server, so it sees only what it creates,
as it would on an empty database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mltrail.store.http import HttpStore
from store.test_store_contract import *  # noqa: F403 - the suite's tests and fixtures
from support.servers import shared_server_for, unique_name


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[HttpStore]:
    server = shared_server_for(request)
    with HttpStore(server.url, server.make_token(unique_name("contract"))) as http_store:
        yield http_store
