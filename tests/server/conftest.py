"""HttpStores talking to real ``mltrail server`` subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mltrail.store.http import HttpStore
from support.servers import ServerProcess


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
