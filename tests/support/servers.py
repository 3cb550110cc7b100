"""Real ``mltrail server`` subprocesses for tests.

Fixtures:
    server_factory: ``server_factory(db_url) -> ServerProcess``; every server it starts is
        terminated at teardown.
    server: a server on a fresh SQLite file.
    shared_server: one SQLite-backed server for the whole session; tests keep apart by using
        their own users (``make_token(unique_name())``), which see only their own projects.
    shared_pg_server: the same on a PostgreSQL database of its own.
    live_server: parametrised over SQLite and PostgreSQL.
    (``server`` and ``live_server`` start on copies of the session's migrated database; the
    shared servers start on empty ones, so a server migrating at start-up stays tested.)

A :class:`ServerProcess` has ``.url``, ``.admin_token``, ``.db_url``, ``make_token(user,
admin=False)`` and ``stop()`` / ``kill()`` (SIGKILL) / ``start()`` (same port and database).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from support.pg import create_database

START_TIMEOUT = 60.0
_LAUNCH = "import sys; from mltrail.cli.main import main; main(sys.argv[1:])"


def unique_name(prefix: str = "user") -> str:
    """A user name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _read_written(fd: int, pending: bytearray, lines: list[str]) -> None:
    """Whatever the process has written to the non-blocking pipe ``fd`` so far, as lines."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        pending += chunk
        _split_lines(pending, lines)


def _split_lines(pending: bytearray, lines: list[str]) -> None:
    """Move the complete lines at the start of ``pending`` to ``lines``."""
    *complete, rest = pending.split(b"\n")
    lines.extend(line.decode(errors="replace") for line in complete)
    pending[:] = rest


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One ``mltrail server`` subprocess on 127.0.0.1, restartable on the same port and DB."""

    def __init__(
        self,
        db_url: str,
        home: Path,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.db_url = db_url
        self.home = home
        self.extra_args = extra_args
        self.extra_env = dict(env or {})  # more MLTRAIL_* settings, e.g. MLTRAIL_CRASH_AFTER
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token: str | None = None
        self.stdout_lines: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr_path = home / f"server-{self.port}.stderr"
        self._sql_store = None

    def start(self) -> ServerProcess:
        """Start (or restart) the server and wait until /healthz answers."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
        env["MLTRAIL_HOME"] = str(self.home)
        env.update(self.extra_env)
        args = ["server", "--db", self.db_url, "--host", "127.0.0.1", "--port", str(self.port)]
        args += self.extra_args
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr_path.open("ab"),
            stdin=subprocess.DEVNULL,
            env=env,
        )
        assert self.proc.stdout is not None
        lines: list[str] = []
        self.stdout_lines = lines
        fd = self.proc.stdout.fileno()
        os.set_blocking(fd, False)
        pending = bytearray()
        self._wait_healthy(lambda: _read_written(fd, pending, lines))
        # the server prints its token and flushes before it listens, so once /healthz answers
        # the token is in the pipe: read here, not by a thread a loaded machine may not run yet
        _read_written(fd, pending, lines)
        os.set_blocking(fd, True)
        threading.Thread(
            target=self._read_stdout, args=(self.proc, pending, lines), daemon=True
        ).start()
        for line in lines:
            if line.startswith("admin token: "):
                self.admin_token = line.split(": ", 1)[1].strip()
        return self

    @staticmethod
    def _read_stdout(proc: subprocess.Popen[bytes], pending: bytearray, lines: list[str]) -> None:
        """The rest of the server's stdout (kept so the pipe never fills)."""
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            pending += chunk
            _split_lines(pending, lines)

    def _wait_healthy(self, read_stdout: Callable[[], None]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            read_stdout()  # the pipe holds 64 KiB: a server printing more must not block
            if self.proc.poll() is not None:
                raise RuntimeError(f"mltrail server exited {self.proc.returncode}: {self.stderr}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"mltrail server did not become healthy: {self.stderr}")

    @property
    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace") if self._stderr_path.exists() else ""

    def access_log(self) -> list[dict]:
        """The JSON access-log lines of every request answered so far. The server logs a
        request after answering it, so a loaded machine may write a line later than its answer
        came back: this sends a marker request (an unknown path) and waits for its line, which
        comes after every earlier request's; the markers themselves are left out."""
        mark = f"/mark-{uuid.uuid4().hex}"
        httpx.get(self.url + mark)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            lines = [json.loads(x) for x in self.stderr.splitlines() if x.startswith("{")]
            paths = [x["path"] for x in lines]
            if mark in paths:
                return [x for x in lines[: paths.index(mark)] if not x["path"].startswith("/mark-")]
            time.sleep(0.05)
        raise AssertionError(f"the server never logged {mark}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL after ``timeout``)."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def make_token(self, user: str, admin: bool = False) -> str:
        """A token for ``user``, creating the user when new (straight in the database)."""
        from mltrail.core.errors import NotFoundError
        from mltrail.store.sql import SqlStore

        if self._sql_store is None:
            self._sql_store = SqlStore.open(self.db_url)
        auth = self._sql_store.auth
        try:
            auth.get_user(user)
        except NotFoundError:
            auth.create_user(user, is_admin=admin)
        return auth.create_token(user)

    def close(self) -> None:
        self.stop()
        if self._sql_store is not None:
            self._sql_store.close()
            self._sql_store = None


@pytest.fixture
def server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ServerProcess]]:
    """``server_factory(db_url, port=None, extra_args=(), env=None)``: start a real server
    (``extra_args`` go to ``mltrail server``, e.g. ``("--artifacts", url)``; ``env``: extra
    variables, e.g. ``{"MLTRAIL_CRASH_AFTER": "3"}``); all stopped at teardown."""
    started: list[ServerProcess] = []

    def start(
        db_url: str,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        home = tmp_path_factory.mktemp("server-home")
        started.append(ServerProcess(db_url, home, port, extra_args, env))
        return started[-1].start()

    yield start
    for proc in started:
        proc.close()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess], migrated_sqlite_url: str) -> ServerProcess:
    """A real server on a fresh SQLite database (``sqlite_url``'s file, a copy of the session's
    migrated one: migrating at start-up adds seconds to every test; the session's shared
    servers still start on empty databases and migrate them)."""
    return server_factory(migrated_sqlite_url)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server on SQLite for the session (start-up costs seconds)."""
    home = tmp_path_factory.mktemp("shared-server")
    proc = ServerProcess(f"sqlite:///{home / 'mltrail.db'}", home).start()
    yield proc
    proc.close()


@pytest.fixture(scope="session")
def shared_pg_server(
    pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One real server on a PostgreSQL database of its own for the session."""
    import psycopg

    name = f"mltrail_test_shared_{uuid.uuid4().hex[:12]}"
    admin_url = pg_server + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        create_database(conn, name)
    db_url = pg_server.replace("postgresql://", "postgresql+psycopg://") + "/" + name
    proc = ServerProcess(db_url, tmp_path_factory.mktemp("shared-pg-server")).start()
    yield proc
    proc.close()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def shared_server_for(request: pytest.FixtureRequest) -> ServerProcess:
    """The session's shared server for a test parametrised with ``"sqlite"`` / ``"postgres"``."""
    name = "shared_server" if request.param == "sqlite" else "shared_pg_server"
    return request.getfixturevalue(name)


@pytest.fixture(params=["sqlite", "postgres"])
def live_server(request: pytest.FixtureRequest) -> ServerProcess:
    """A real server on a fresh SQLite, then PostgreSQL, database."""
    # the database first, so it is dropped only after the server has stopped; a migrated copy,
    # as for ``server``
    db_url = request.getfixturevalue(
        "migrated_sqlite_url" if request.param == "sqlite" else "migrated_pg_url"
    )
    return request.getfixturevalue("server_factory")(db_url)
