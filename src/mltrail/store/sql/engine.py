"""Engine set-up for SQLite and PostgreSQL, and transactions (migrations: migrate.py).

SQLite runs in WAL mode with a 30 s busy timeout and foreign keys on, and
``synchronous=NORMAL``: a commit survives a crash of the process, and a power loss or OS crash
may undo the last commits but never corrupts the file. ``sqlite:///PATH?synchronous=full``
syncs the WAL on every commit instead, so a commit also survives a power loss. Writes begin with
``BEGIN IMMEDIATE`` so two writers queue on the lock instead of deadlocking on a lock upgrade;
reads begin deferred, so readers in other processes never block the writer.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    make_url,
    text,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import QueuePool, StaticPool

from mltrail.config import DEFAULT_CRASH_AFTER_SECONDS, DEFAULT_TRASH_DAYS
from mltrail.core.errors import ValidationError
from mltrail.store.sql.kept_connection import KeptConnections
from mltrail.store.sql.wal import CONNECTION_PRAGMAS, WalCheckpointer
from mltrail.store.sql.write_lock import FileWriteLock, file_write_lock
from mltrail.store.waiting import WouldWait, waiting_forbidden

BUSY_TIMEOUT_MS = 30_000
SYNCHRONOUS_MODES = ("normal", "full")  # the ``?synchronous=`` a SQLite URL may carry
# Each SQLite connection's page cache, KiB (SQLite's default is 2,000 KiB). Each pooled
# connection keeps the pages it read until it closes: the server's ingest and read-back held
# 4.9 MiB in two connections' caches, four runs at once more. The pages come from the OS's
# file cache at a pread each: 512 KiB lowered the server's peak RSS during the benchmark's
# ingest by 1.5 to 3.7 MiB (3 rounds, 94.6-95.4 to 91.7-93.4 MiB; ``bench --only ingest``
# 95.9/95.1 to 93.2/93.5) with the same server CPU and ingest rate, and 20 full exports plus
# 100 chart reads of 50,000-point series took 0.39 s and 1.69 s of CPU against 0.40 s, 1.74 s.
PAGE_CACHE_KIB = 512
_WRITE = "mltrail_write"


@dataclass
class Database:
    """An engine plus the helpers every store module uses.

    Attributes:
        engine: the SQLAlchemy engine.
        clock: source of unix times (injectable for tests).
        crash_after: seconds without a heartbeat after which reads report a running
            experiment as crashed (``Settings.crash_after``; see ``core/liveness.py``).
        trash_retention: seconds a deleted experiment stays restorable (``core/lifecycle.py``).
        last_expiry: monotonic time of the last job-lease expiry sweep (claims poll several
            times a second; the sweep runs at most once a second per database).
    """

    engine: Engine
    clock: Callable[[], float] = time.time
    crash_after: float = DEFAULT_CRASH_AFTER_SECONDS
    trash_retention: float = DEFAULT_TRASH_DAYS * 86400.0
    last_expiry: float = field(default=0.0, init=False)
    _write_lock: FileWriteLock | None = field(default=None, init=False, repr=False)
    _wal: WalCheckpointer | None = field(default=None, init=False, repr=False)
    _kept: KeptConnections | None = field(default=None, init=False, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection inside a write transaction, committed on success.

        On SQLite, write transactions of this process queue on one lock per database file
        before taking a connection: SQLite's busy handler makes waiting writers poll with
        sleeps, so under many concurrent writers some waited seconds while newcomers went
        first (p99 acknowledgements of 6-14 s with 16 trainers). Other processes' writers
        queue with them on a file lock beside the database (``write_lock.py``), so none polls
        SQLite's lock with the busy handler's sleeps.
        """
        if self.is_sqlite and self._write_lock is None:
            self._write_lock = file_write_lock(self.engine.url.database)
            self._wal = WalCheckpointer.of_file(self.engine)
        if waiting_forbidden():
            with self._write_now(), self._kept_now() as conn:
                conn.execution_options(**{_WRITE: True})
                with conn.begin():  # SQLite's lock without a busy timeout: see _on_begin
                    yield conn
        else:
            with self._write_lock or nullcontext(), self.engine.connect() as conn:
                conn.execution_options(**{_WRITE: True})
                with conn.begin():
                    yield conn
        if self._wal is not None:  # committed, the lock released: see store/sql/wal.py
            self._wal.after_commit()

    @contextmanager
    def _write_now(self) -> Iterator[None]:
        """This process's write lock if it is free at once, else :class:`WouldWait`
        (``store/waiting.py``); on PostgreSQL always :class:`WouldWait`."""
        if self._write_lock is None or not self._write_lock.acquire(blocking=False):
            raise WouldWait("the write lock is taken" if self.is_sqlite else "not on SQLite")
        try:
            yield
        finally:
            self._write_lock.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection inside a read transaction (one consistent snapshot)."""
        if waiting_forbidden():
            if not self.is_sqlite:
                raise WouldWait("a PostgreSQL read waits on the network")
            with self._kept_now() as conn, conn.begin():
                yield conn
            return
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def lone_read(self) -> Iterator[Connection]:
        """A connection for a read of one statement run through the driver
        (:class:`DriverStatement`): on SQLite without BEGIN and COMMIT, as a lone statement
        reads one snapshot of its own (they were most of a token check's cost, which every
        request pays); elsewhere :meth:`read`. A statement run through SQLAlchemy on it still
        begins a transaction, rolled back when the connection goes back to the pool."""
        if not self.is_sqlite:
            with self.read() as conn:
                yield conn
            return
        with self._kept_now() if waiting_forbidden() else self.engine.connect() as conn:
            yield conn

    def _kept_now(self) -> Any:
        """The calling thread's kept connection (``store/sql/kept_connection.py``) for a
        call that must not wait."""
        if self._kept is None:
            self._kept = KeptConnections(self._connect_now, _reset_kept)
        return self._kept.use()

    def _connect_now(self) -> Connection:
        """A connection from the pool, or :class:`WouldWait` when every one is taken (the
        pool would block until another thread returns one)."""
        pool = self.engine.pool
        if isinstance(pool, QueuePool):
            limit = pool.size() + pool._max_overflow  # (an overflow of -1 has no limit)
            if pool._max_overflow >= 0 and pool.checkedout() >= limit:
                raise WouldWait("every pooled connection is taken")
        return self.engine.connect()

    def insert(self, table: Any) -> Any:
        """A dialect insert, which has ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
        if self.is_sqlite:
            return sqlite.insert(table)
        # imported here: 19 modules, 2.7 MB a SQLite server would hold for nothing
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)

    def insert_rows(
        self, conn: Connection, table: Any, names: list[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """INSERT many rows, each a tuple of the ``names`` columns.

        On SQLite this goes straight to the driver's executemany (:func:`driver_cursor`): for the
        thousands of rollup rows of a large batch, SQLAlchemy's per-row parameter processing
        costs more than the insert itself. Elsewhere SQLAlchemy's batched multi-VALUES insert is
        the fast path.
        """
        if not rows:
            return
        if not self.is_sqlite:
            conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])
            return
        driver_cursor(conn, _insert_sql(table.name, tuple(names)), rows, many=True).close()

    def update_rows(
        self,
        conn: Connection,
        table: Any,
        names: list[str],
        keys: tuple[str, ...],
        rows: list[tuple[Any, ...]],
    ) -> None:
        """UPDATE many rows: each a tuple of the ``names`` columns' new values, then the
        ``keys`` columns' values that pick its row; on SQLite through the driver's executemany,
        like :meth:`insert_rows`."""
        if not rows:
            return
        if not self.is_sqlite:
            test = and_(*(table.c[k] == bindparam(f"b_{k}") for k in keys))
            params = [*names, *(f"b_{k}" for k in keys)]
            conn.execute(update(table).where(test),
                         [dict(zip(params, row, strict=True)) for row in rows])  # fmt: skip
            return
        sql = _update_sql(table.name, tuple(names), keys)
        driver_cursor(conn, sql, rows, many=True).close()

    def close(self) -> None:
        if self._wal is not None:
            self._wal.close()
        if self._kept is not None:
            self._kept.close()
        self.engine.dispose()


def _reset_kept(conn: Connection) -> None:
    """What the pool's reset on return did to a connection kept after a use instead."""
    if conn.in_transaction():
        conn.rollback()
    driver = conn.connection.driver_connection
    if driver is not None and driver.in_transaction:  # a BEGIN issued to the driver itself
        driver.rollback()
    conn.execution_options(**{_WRITE: False})


# Terms OR-ed in one statement by select_any: bounded, so the expression stays shallow.
OR_TERMS = 100


def select_any(
    conn: Connection,
    table: Table,
    tests: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    columns: tuple[str, ...] | None = None,
) -> list[dict[str, Any]]:
    """The ``columns`` (all by default) of the rows of ``table`` matching any entry of
    ``rows``: each entry's values compared by ``tests`` (``"series_id ="``, ``"start >="``
    ...) and AND-ed, the entries OR-ed.

    SQLite answers such an OR with one index search per entry, where a row-value ``IN`` scans
    the whole table; the statement is plain text cached per shape (building it from
    SQLAlchemy expressions cost more than running it), and on SQLite it goes straight to the
    driver (SQLAlchemy's row objects cost more than the ingest's lookups themselves).
    """
    names = columns or tuple(c.name for c in table.c)
    return [
        dict(zip(names, r, strict=True)) for r in select_any_tuples(conn, table, tests, rows, names)
    ]


def select_any_tuples(
    conn: Connection,
    table: Table,
    tests: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    columns: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    """:func:`select_any` of the ``columns``, each row a plain tuple (on SQLite the driver's
    own, fetched at once: an append's 100 stored partial buckets cost more as dicts)."""
    sqlite = conn.dialect.name == "sqlite"
    found: list[tuple[Any, ...]] = []
    for i in range(0, len(rows), OR_TERMS):
        part = rows[i : i + OR_TERMS]
        sql = _any_of(table.name, columns, tests, len(part), sqlite)
        if sqlite:
            found += driver_tuples(conn, sql, tuple(v for row in part for v in row))
        else:
            params = {f"p{k}_{j}": v for k, row in enumerate(part) for j, v in enumerate(row)}
            typed = text(sql).columns(*(table.c[name] for name in columns))
            found += [tuple(r) for r in conn.execute(typed, params)]
    return found


def driver_tuples(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The rows of plain ``sql`` (SQLite's ``?`` paramstyle) as the driver's own tuples, fetched
    at once, without SQLAlchemy's result handling (SQLite: no type to convert)."""
    cursor = driver_cursor(conn, sql, params)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def driver_cursor(conn: Connection, sql: str, params: Any, *, many: bool = False) -> Any:
    """The SQLite driver's cursor after running plain ``sql`` (``?`` paramstyle; ``params`` a
    sequence of rows when ``many``) on ``conn``'s own driver connection, in its transaction.

    SQLAlchemy's statement and result machinery cost a one-point append more than its
    statements did, for nothing on SQLite (no type to convert). What that machinery gave is
    kept: a ``before_cursor_execute`` listener (a test's statement recorder) still sees the
    statement, and a driver error is raised as SQLAlchemy's wrapped one (``OperationalError``
    for a locked database ...), which the server's error mapping knows.
    """
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    if conn.dispatch.before_cursor_execute:
        conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, many)
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except sqlite3.Error as exc:
        cursor.close()
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error, ismulti=many) from exc
    return cursor


class DriverStatement:
    """A Core statement run on SQLite through :func:`driver_cursor` (compiled once, on first
    use, to its text and its parameters' order), elsewhere through SQLAlchemy. For statements whose parameters and columns
    SQLite's driver takes and gives as they are (numbers, strings, bytes; a Boolean column
    comes back as 0 or 1)."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: tuple[str, tuple[str, ...]] | None = None

    def cursor(self, conn: Connection, params: dict[str, Any]) -> Any:
        """The driver's cursor after running the statement with ``params`` (by name)."""
        sql, names = self._compile(conn)
        return driver_cursor(conn, sql, tuple(params[name] for name in names))

    def _compile(self, conn: Connection) -> tuple[str, tuple[str, ...]]:
        """The statement's SQLite text and its parameters' names in order (compiled once)."""
        if self._compiled is None:
            compiled = self.statement.compile(dialect=conn.dialect)
            self._compiled = (str(compiled), tuple(compiled.positiontup or ()))
        return self._compiled

    def all(self, conn: Connection, params: dict[str, Any]) -> list[Sequence[Any]]:
        """Every row the statement gives: on SQLite the driver's tuples, elsewhere its rows."""
        if conn.dialect.name != "sqlite":
            return list(conn.execute(self.statement, params).all())
        cursor = self.cursor(conn, params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def run_many(self, conn: Connection, params: Sequence[dict[str, Any]]) -> None:
        """Run the statement once per parameter set (an executemany): on SQLite through the
        driver, elsewhere through SQLAlchemy."""
        if conn.dialect.name != "sqlite":
            conn.execute(self.statement, list(params))
            return
        sql, names = self._compile(conn)
        rows = [tuple(p[name] for name in names) for p in params]
        driver_cursor(conn, sql, rows, many=True).close()

    def first(self, conn: Connection, params: dict[str, Any]) -> Sequence[Any] | None:
        """The first row the statement gives (None for none): on SQLite the driver's tuple,
        elsewhere (through SQLAlchemy, which converts the types) its row."""
        if conn.dialect.name != "sqlite":
            return conn.execute(self.statement, params).first()
        cursor = self.cursor(conn, params)
        try:
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row
        finally:
            cursor.close()


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, names: tuple[str, ...]) -> str:
    columns = ", ".join(f'"{n}"' for n in names)  # names from our schema
    return f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join("?" * len(names))})'


@functools.lru_cache(maxsize=64)
def _update_sql(table: str, names: tuple[str, ...], keys: tuple[str, ...]) -> str:
    assignments = ", ".join(f'"{n}" = ?' for n in names)  # names from our schema
    where = " AND ".join(f'"{k}" = ?' for k in keys)
    return f'UPDATE "{table}" SET {assignments} WHERE {where}'


@functools.lru_cache(maxsize=64)
def _any_of(table: str, names: tuple[str, ...], tests: tuple[str, ...], count: int,
            positional: bool) -> str:  # fmt: skip
    mark = "?" if positional else ":p{k}_{j}"
    term = " AND ".join(f"{test} {mark.replace('{j}', str(j))}" for j, test in enumerate(tests))
    where = " OR ".join("(" + term.format(k=k) + ")" for k in range(count))
    columns = ", ".join(f'"{name}"' for name in names)  # names from our schema
    return f'SELECT {columns} FROM "{table}" WHERE {where}'


def in_write(conn: Connection) -> bool:
    """Whether ``conn`` is inside a :meth:`Database.write` transaction."""
    return bool(conn.get_execution_options().get(_WRITE, False))


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with mltrail's connection settings.

    Raises:
        ValidationError: for a URL that is neither SQLite nor PostgreSQL, or a PostgreSQL one
            without the psycopg driver installed.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql+psycopg://"):
        try:
            import psycopg  # noqa: F401  (SQLAlchemy imports it later, as a traceback)
        except ImportError:
            raise ValidationError(
                "PostgreSQL needs the psycopg driver: pip install 'mltrail[postgres]'", "db_url"
            ) from None
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise ValidationError("must be sqlite:///PATH or postgresql+psycopg://...", "db_url")


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    synchronous = str(parsed.query.get("synchronous", "normal")).lower()
    if synchronous not in SYNCHRONOUS_MODES:
        raise ValidationError("?synchronous= must be normal or full", "db_url")
    if "synchronous" in parsed.query:
        url = parsed.difference_update_query(["synchronous"]).render_as_string()
    if parsed.database == "":  # SQLAlchemy would open a database in memory, gone at exit
        raise ValidationError(
            "sqlite:/// names no file: sqlite:///PATH (sqlite:// is a database in memory)",
            "db_url",
        )
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if not memory and url.startswith("sqlite:///"):
        # the embedded database's folder ($MLTRAIL_HOME) is made on first use
        Path(url[len("sqlite:///") :].split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    else:
        kwargs.update(pool_size=10, max_overflow=20)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
            for pragma in CONNECTION_PRAGMAS:  # checkpoints beside the writes: sql/wal.py
                cursor.execute(pragma)
            cursor.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        if write and waiting_forbidden():
            _begin_immediate_now(conn)
        else:
            driver_cursor(conn, "BEGIN IMMEDIATE" if write else "BEGIN", ()).close()

    return engine


def _begin_immediate_now(conn: Connection) -> None:
    """BEGIN IMMEDIATE with no busy timeout: another process's write lock is a
    :class:`WouldWait` at once instead of a wait (in WAL mode nothing else in a write
    transaction waits once it holds the lock, so the usual timeout is back right after)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA busy_timeout=0")
    try:  # through the driver: any failure is a WouldWait, the retry meets it as usual
        driver.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise WouldWait("another process holds the database's write lock") from exc
    finally:
        driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
