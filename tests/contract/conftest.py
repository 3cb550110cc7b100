"""The contract test modules run in every mode: embedded SqlStore and HttpStore -> real server,
each on SQLite and on PostgreSQL. Backends are shared by the session (a server takes seconds to
start); every test works in projects of its own, so tests stay independent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mltrail.api import Api

MODES = ["embedded-sqlite", "embedded-postgres", "server-sqlite", "server-postgres"]


@dataclass
class Mode:
    """How the API under test reaches its data, and how to make more users in it."""

    name: str
    api: Api
    new_user_api: Callable[[str], Api] | None  # server modes: an Api for a fresh non-admin user


@pytest.fixture(scope="session")
def embedded_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One SqlStore per backend for the session, opened on first use."""
    opened: dict[str, Any] = {}
    yield opened
    for store in opened.values():
        store.close()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, embedded_stores: dict[str, Any]) -> Iterator[Mode]:
    kind, backend = request.param.split("-")
    if kind == "embedded":
        if backend not in embedded_stores:
            from mltrail.store.sql import SqlStore

            url = request.getfixturevalue("pg_session_url") if backend == "postgres" else None
            url = (
                url
                or f"sqlite:///{request.getfixturevalue('tmp_path_factory').mktemp('embedded') / 'mltrail.db'}"
            )
            embedded_stores[backend] = SqlStore.open(url)
        yield Mode(request.param, Api(embedded_stores[backend]), None)
        return
    from mltrail.store.http import HttpStore

    server = request.getfixturevalue("shared_server" if backend == "sqlite" else "shared_pg_server")
    opened: list[Api] = []

    def new_user_api(name: str) -> Api:
        opened.append(Api(HttpStore(server.url, server.make_token(name))))
        return opened[-1]

    api = Api(HttpStore(server.url, server.admin_token))
    yield Mode(request.param, api, new_user_api)
    for a in [api, *opened]:
        a.close()


@pytest.fixture
def api(mode: Mode) -> Api:
    return mode.api
