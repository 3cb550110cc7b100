"""Fixtures: the MissingLink client (cached virtualenv) configured for a fresh mltrail user on a
real ``mltrail server``, on SQLite and on PostgreSQL, and that user's own mltrail ``Api``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from client_env import ClientVenv, MissingLinkClient, client_venv
from missinglink_seed import Setup

from mltrail.api import Api
from mltrail.cli.missinglink import config_text
from mltrail.store.http import HttpStore
from support.servers import ServerProcess, unique_name


@pytest.fixture(scope="session")
def missinglink_venv() -> ClientVenv:
    """The pinned client, installed once into a cached virtualenv (never into mltrail's)."""
    return client_venv()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> ServerProcess:
    """The session's shared real server on SQLite, then on PostgreSQL."""
    name = "shared_server" if request.param == "sqlite" else "shared_pg_server"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def setup_for(
    missinglink_venv: ClientVenv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[ServerProcess], Setup]]:
    """Makes a :class:`Setup` on a given server: a fresh user with a project and a client
    config for that user."""
    made: list[Setup] = []

    def make(server: ServerProcess) -> Setup:
        token = server.make_token(unique_name())
        api = Api(HttpStore(server.url, token))
        project = api.projects.create(unique_name("missinglink"))["project_id"]
        home = tmp_path_factory.mktemp("missinglink-home")
        config = home / "missinglink.cfg"
        config.write_text(config_text(server.url, token))
        made.append(
            Setup(server, token, project, api, MissingLinkClient(missinglink_venv, config, home))
        )
        return made[-1]

    yield make
    for setup in made:
        setup.mltrail.close()


@pytest.fixture
def setup(backend: ServerProcess, setup_for: Callable[[ServerProcess], Setup]) -> Setup:
    """A :class:`Setup` on the session's shared server, on SQLite and on PostgreSQL."""
    return setup_for(backend)
