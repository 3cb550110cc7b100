"""Artifact stores on every backend: SqlStore (embedded) and HttpStore against a real server,
on SQLite and PostgreSQL, with blobs in a local folder and in S3 (a real moto server process).

Fixtures:
    artifact_env: parametrised over the 8 combinations; an :class:`ArtifactEnv` with the store
        a user works with, an administrator's store (for ``collect_garbage``) and the blob
        store itself (to look at what is stored).
    artifact_servers: ``artifact_servers(db, backend)``, a real server per combination, started
        on first use and kept for the session (tests keep apart by using their own users).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mltrail.store.artifacts import BlobStore
from mltrail.store.base import Store
from mltrail.store.blobs import open_blobs
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from support.pg import create_database
from support.s3 import BUCKET
from support.servers import ServerProcess, unique_name

COMBINATIONS = [
    (mode, db, backend)
    for mode in ("embedded", "server")
    for db in ("sqlite", "postgres")
    for backend in ("local", "s3")
]


@dataclass
class ArtifactEnv:
    """One backend combination: ``store`` (a user's), ``admin`` (may collect garbage),
    ``blobs`` (the blob store underneath), ``server`` (server mode only)."""

    store: Store
    admin: Store
    blobs: BlobStore
    location: str
    server: ServerProcess | None = None


def blob_digests(blobs: BlobStore) -> set[str]:
    return {info.sha256 for info in blobs.list_blobs()}


@pytest.fixture(scope="session")
def artifact_servers(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[str, str], tuple[ServerProcess, str]]]:
    started: dict[tuple[str, str], tuple[ServerProcess, str]] = {}
    databases: list[str] = []

    def get(db: str, backend: str) -> tuple[ServerProcess, str]:
        if (db, backend) not in started:
            home = tmp_path_factory.mktemp(f"artifact-server-{db}-{backend}")
            if backend == "s3":
                request.getfixturevalue("s3_server")
                location = f"s3://{BUCKET}/server-{db}-{uuid.uuid4().hex[:8]}"
            else:
                location = str(home / "artifacts")
            db_url = f"sqlite:///{home / 'mltrail.db'}"
            if db == "postgres":
                db_url = _make_pg_database(request.getfixturevalue("pg_server"), databases)
            proc = ServerProcess(db_url, home, extra_args=("--artifacts", location)).start()
            started[(db, backend)] = (proc, location)
        return started[(db, backend)]

    yield get
    for proc, _ in started.values():
        proc.close()
    for name_url in databases:
        _drop_pg_database(name_url)


def _make_pg_database(pg_server: str, databases: list[str]) -> str:
    import psycopg

    name = f"mltrail_test_artifacts_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as conn:
        create_database(conn, name)
    url = pg_server.replace("postgresql://", "postgresql+psycopg://") + "/" + name
    databases.append(url)
    return url


def _drop_pg_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    admin = base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _location(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "s3":
        return request.getfixturevalue("s3_location")
    return str(tmp_path / "artifacts")


@pytest.fixture(params=COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def artifact_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactEnv]:
    mode, db, backend = request.param
    if mode == "server":
        proc, location = request.getfixturevalue("artifact_servers")(db, backend)
        store = HttpStore(proc.url, proc.make_token(unique_name()))
        admin = HttpStore(proc.url, proc.admin_token)
        yield ArtifactEnv(store, admin, open_blobs(location), location, proc)
        store.close()
        admin.close()
        return
    db_url = request.getfixturevalue("migrated_sqlite_url" if db == "sqlite" else "migrated_pg_url")
    location = _location(request, backend, tmp_path)
    sql = SqlStore.open(db_url, blobs=open_blobs(location))
    yield ArtifactEnv(sql, sql, open_blobs(location), location)
    sql.close()
