"""Fixtures every test module may use: a clean environment, SQLite and PostgreSQL URLs."""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.pg import CONNECT_TIMEOUT, create_database

PG_ADMIN_URL = os.environ.get("MLTRAIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

# real `mltrail server` subprocesses (server_factory, server, live_server, shared_server), store
# fixtures (sql_store, sqlite_store) and private PostgreSQL clusters for restart tests (private_pg)
# and a real S3-compatible server (moto) for artifact storage tests (s3_server, s3_location)
pytest_plugins = [
    "support.servers",
    "support.stores",
    "support.pg_cluster",
    "support.s3",
    "support.file_order",
]


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's MLTRAIL_* settings; each gets its own MLTRAIL_HOME."""
    for name in list(os.environ):
        if name.startswith("MLTRAIL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLTRAIL_HOME", str(tmp_path_factory.mktemp("mltrail-home")))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mltrail.db'}"


def _pg_connect(dbname: str = "postgres"):
    import psycopg

    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname
    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The local PostgreSQL server's base URL (without database), or skip when it is down."""
    try:
        _pg_connect().close()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0]


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    yield from _pg_database(pg_server)


def _pg_database(pg_server: str, template: str | None = None) -> Iterator[str]:
    if template is None:
        name = f"mltrail_test_{uuid.uuid4().hex[:12]}"
        with _pg_connect() as conn:
            create_database(conn, name)
    else:
        name = _DATABASES.copy_of(template)
    yield pg_server.replace("postgresql://", "postgresql+psycopg://") + "/" + name
    _DATABASES.drop(name)


_CREATE, _DROP, _STOP = 0, 1, 2  # the thread's work, most urgent first
COPIES_AHEAD = 2  # copies of a template kept ready


class _Databases:
    """The tests' PostgreSQL databases, created and dropped in a thread of their own: a copy
    of the migrated template is made while the tests before run (CREATE DATABASE takes
    0.3-1 s here), and DROP DATABASE forces a checkpoint (0.1-2 s) that no test needs to wait
    for; hundreds of databases a run. ``close`` drops the last ones (at the session's end)."""

    def __init__(self) -> None:
        self._work: queue.PriorityQueue[tuple[int, int, str]] = queue.PriorityQueue()
        self._order = 0  # first come, first served within a kind
        self._ready: dict[str, queue.Queue[str]] = {}
        self._thread: threading.Thread | None = None
        self.failures: list[str] = []

    def _put(self, kind: int, argument: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pg-databases", daemon=True)
            self._thread.start()
        self._order += 1
        self._work.put((kind, self._order, argument))

    def copy_of(self, template: str) -> str:
        """A fresh copy of ``template`` (made ahead), and the next one asked for."""
        if template not in self._ready:
            self._ready[template] = queue.Queue()
            for _ in range(COPIES_AHEAD):
                self._put(_CREATE, template)
        name = self._ready[template].get(timeout=300)
        self._put(_CREATE, template)
        if not name:  # that copy failed
            raise RuntimeError(f"no copy of {template}: {self.failures[-1]}")
        return name

    def drop(self, name: str) -> None:
        self._put(_DROP, name)

    def _run(self) -> None:
        while True:
            kind, _, argument = self._work.get()
            if kind == _STOP:
                return
            try:
                with _pg_connect() as conn:
                    if kind == _CREATE:
                        name = f"mltrail_test_{uuid.uuid4().hex[:12]}"
                        create_database(conn, name, template=argument)
                        self._ready[argument].put(name)
                    else:
                        conn.execute(f'DROP DATABASE IF EXISTS "{argument}" WITH (FORCE)')
            except Exception as exc:  # reported at the session's end (a copy: at once)
                self.failures.append(f"{argument}: {exc}")
                if kind == _CREATE:
                    self._ready[argument].put("")

    def close(self) -> None:
        if self._thread is None:
            return
        self._put(_STOP, "")
        self._thread.join(timeout=600)
        self._thread = None
        for ready in self._ready.values():  # copies made ahead that no test took
            while not ready.empty():
                if name := ready.get():
                    self._put(_DROP, name)
        self._put(_STOP, "")
        if self._thread is not None:
            self._thread.join(timeout=600)
            self._thread = None
        if self.failures:
            warnings.warn(f"PostgreSQL databases not created or dropped: {self.failures}",
                          stacklevel=1)  # fmt: skip


_DATABASES = _Databases()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The databases' drops finished before pytest exits (fixtures are torn down by now)."""
    _DATABASES.close()


# Migrating a new database takes a few tenths of a second (most on PostgreSQL), hundreds of
# times a run: store fixtures start from a copy of one database migrated per session instead,
# with an identity of its own as a fresh migration gives. Migration tests use the empty ones.
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once for the session."""
    from mltrail.store.sql import SqlStore

    path = tmp_path_factory.mktemp("migrated") / "template.db"
    SqlStore.open(f"sqlite:///{path}").close()
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """The name of a PostgreSQL database migrated once for the session."""
    from mltrail.store.sql import SqlStore

    for url in _pg_database(pg_server):
        SqlStore.open(url).close()
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def migrated_sqlite_url(sqlite_url: str, sqlite_template: Path) -> str:
    """``sqlite_url``'s file, already migrated."""
    shutil.copyfile(sqlite_template, sqlite_url.removeprefix("sqlite:///"))
    _renew_identity(sqlite_url)
    return sqlite_url


@pytest.fixture
def migrated_home(sqlite_template: Path) -> Path:
    """The test's MLTRAIL_HOME (``clean_environment``'s) with its embedded database already
    migrated: a copy of the session's, as ``migrated_sqlite_url``."""
    home = Path(os.environ["MLTRAIL_HOME"])
    shutil.copyfile(sqlite_template, home / "mltrail.db")
    _renew_identity(f"sqlite:///{home / 'mltrail.db'}")
    return home


@pytest.fixture
def migrated_pg_url(pg_server: str, pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, already migrated, dropped afterwards."""
    for url in _pg_database(pg_server, template=pg_template):
        _renew_identity(url)
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL, on a migrated database."""
    return request.getfixturevalue(
        f"migrated_{'sqlite' if request.param == 'sqlite' else 'pg'}_url"
    )


def _copy_of_template(tmp_path_factory: pytest.TempPathFactory, template: Path) -> str:
    path = tmp_path_factory.mktemp("module-db") / "mltrail.db"
    shutil.copyfile(template, path)
    _renew_identity(f"sqlite:///{path}")
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def module_migrated_sqlite_url(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> str:
    """A migrated SQLite file shared by one test module (for a module's shared server)."""
    return _copy_of_template(tmp_path_factory, sqlite_template)


@pytest.fixture(scope="module")
def module_migrated_pg_url(pg_server: str, pg_template: str) -> Iterator[str]:
    """A migrated PostgreSQL database shared by one test module, dropped after it."""
    for url in _pg_database(pg_server, template=pg_template):
        _renew_identity(url)
        yield url


@pytest.fixture(scope="module")
def module_migrated_urls(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], str]]:
    """``new("sqlite" | "postgres")``: one more migrated database for the module, for modules
    that share several servers differing in their settings. The PostgreSQL ones are dropped
    after the module, so after the servers of a fixture that asked for this one."""
    made: list[Iterator[str]] = []

    def new(database: str) -> str:
        if database == "sqlite":
            return _copy_of_template(tmp_path_factory, request.getfixturevalue("sqlite_template"))
        pg_server = request.getfixturevalue("pg_server")
        made.append(_pg_database(pg_server, template=request.getfixturevalue("pg_template")))
        url = next(made[-1])
        _renew_identity(url)
        return url

    yield new
    for database in made:
        next(database, None)  # drops it


def _renew_identity(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE store_identity SET store_id = :id"), {"id": uuid.uuid4().hex})
    engine.dispose()


@pytest.fixture(scope="session")
def pg_session_url(pg_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database shared by a whole test session, dropped at its end."""
    name = f"mltrail_test_session_{uuid.uuid4().hex[:12]}"
    with _pg_connect() as conn:
        create_database(conn, name)
    yield pg_server.replace("postgresql://", "postgresql+psycopg://") + "/" + name
    with _pg_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")
