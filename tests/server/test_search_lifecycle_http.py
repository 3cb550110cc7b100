"""The search and lifecycle contracts through HttpStore: in-process on the real app, and
against real ``mltrail server`` processes, each on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mltrail.store.blobs import open_blobs
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from store import test_lifecycle_contract, test_search_contract
from support.inprocess import inprocess_store
from support.servers import unique_name

CONTRACTS = [test_search_contract, test_lifecycle_contract]
TESTS = [
    (name, getattr(module, name))
    for module in CONTRACTS
    for name in dir(module)
    if name.startswith("test_")
]


@pytest.fixture(params=["inprocess-sqlite", "inprocess-pg", "server-sqlite", "server-pg"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HttpStore]:
    where, db = request.param.split("-")
    if where == "server":
        server = request.getfixturevalue("shared_server" if db == "sqlite" else "shared_pg_server")
        with HttpStore(server.url, server.make_token(unique_name("search"))) as http_store:
            yield http_store
        return
    db_url = request.getfixturevalue("migrated_sqlite_url" if db == "sqlite" else "migrated_pg_url")
    sql = SqlStore.open(db_url, blobs=open_blobs(tmp_path / "blobs"))
    with inprocess_store(sql) as http_store:
        yield http_store
    sql.close()


@pytest.mark.parametrize(("name", "test"), TESTS, ids=[n for n, _ in TESTS])
def test_contract_through_http(
    name: str, test, store: HttpStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the stores' own runs check 120 generated filters on each database; through HTTP, 30
    # (four modes: ~4 minutes of a loaded CI machine less)
    monkeypatch.setattr(test_search_contract, "EXAMPLES", 30)
    test(store)
