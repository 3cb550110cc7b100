"""Fixtures: the real MLflow client pointed at the session's shared ``mltrail server`` (SQLite
and PostgreSQL) as a fresh mltrail user (``mlflow_user.configure``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mlflow_user import MlflowUser, user_session

from support.servers import ServerProcess


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> ServerProcess:
    """The session's shared real server on SQLite, then on PostgreSQL."""
    name = "shared_server" if request.param == "sqlite" else "shared_pg_server"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def user(backend: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowUser]:
    """A fresh user on the shared server (SQLite, then PostgreSQL), MLflow client configured."""
    yield from user_session(backend, monkeypatch)
