"""The JobStore contract suite (tests/jobs/test_jobs_store.py) through HttpStore.

HttpStore -> real ``mltrail server`` subprocess -> SqlStore, on SQLite and on PostgreSQL. Each
test runs as a fresh non-admin user of a session-wide server, so it sees only its own projects,
jobs and agents, as on the fresh database each SqlStore test gets.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobs.test_jobs_store import *  # noqa: F403 - the suite's tests and fixtures
from mltrail.store.http import HttpStore
from support.servers import shared_server_for, unique_name


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[HttpStore]:
    server = shared_server_for(request)
    with HttpStore(server.url, server.make_token(unique_name("jobs"))) as http_store:
        yield http_store
