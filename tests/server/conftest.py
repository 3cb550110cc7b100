"""HttpStores talking to real ``mltrail server`` subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from mltrail.store.http import HttpStore
from support.clients import rest_client
from support.servers import ServerProcess, unique_name


@pytest.fixture
def http_store_factory() -> Iterator[Callable[[str, str | None], HttpStore]]:
    """``http_store_factory(url, token)``; every store is closed at teardown."""
    opened: list[HttpStore] = []

    def make(url: str, token: str | None) -> HttpStore:
        opened.append(HttpStore(url, token, retries=2, backoff=0.05))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def admin(server: ServerProcess, http_store_factory) -> HttpStore:
    """The first-start admin's HttpStore on a fresh SQLite-backed server."""
    assert server.admin_token
    return http_store_factory(server.url, server.admin_token)


@pytest.fixture
def client(shared_server: ServerProcess) -> Iterator[httpx.Client]:
    """A REST client of a new user on the session's shared server."""
    with rest_client(shared_server.url, shared_server.make_token(unique_name())) as c:
        yield c


@pytest.fixture
def experiment(client: httpx.Client) -> str:
    """The path of a fresh experiment of the client's user."""
    project = client.post("/projects", json={"display_name": "errors"}).json()["id"]
    exp = client.post(f"/projects/{project}/experiments", json={}).json()["experiment_id"]
    return f"/projects/{project}/experiments/{exp}"
