"""Fixtures for remote-execution tests: real agent subprocesses against a real server.

``agent_factory(server, *args, token=None, token_file=False)`` starts ``mltrail agent`` with the
server's URL and a token (in ``MLTRAIL_TOKEN``, or in its ``config.toml`` as ``mltrail login``
writes it); every agent it starts is killed at teardown. Without ``--job-user`` in ``args`` its
jobs run as the test's own user (root in CI would otherwise run them as ``nobody``, who cannot
run the test's Python nor read its temporary directory; ``test_jobs_user.py`` tests that user).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import AS_TEST_USER, LAUNCH, AsOwnAdmin, cli_env


class AgentProcess:
    """One ``mltrail agent`` subprocess; its stderr goes to a file the test can read."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def agent_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., AgentProcess]]:
    """``agent_factory(server, *args, token=None, token_file=False)``: start a real agent."""
    from mltrail.config import save_token

    started: list[AgentProcess] = []

    def start(
        server: Any, *args: str, token: str | None = None, token_file: bool = False
    ) -> AgentProcess:
        home = tmp_path_factory.mktemp("agent-home")
        stderr_path = home / "agent.stderr"
        token = token or server.admin_token
        if token_file:
            save_token(home / "config.toml", server.url, token)
        if "--job-user" not in args:
            args = (*args, *AS_TEST_USER)
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "agent", *args],
            env=cli_env(home, server.url, None if token_file else token),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr_path.open("wb"),
            start_new_session=True,  # SIGKILL reaches the agent and its job alike
        )
        started.append(AgentProcess(proc, stderr_path))
        return started[-1]

    yield start
    for agent in started:
        agent.kill()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_db_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A real server on SQLite, then on PostgreSQL (claims use SKIP LOCKED there), shared by the
    module's tests of that database: a start costs 5-10 s on a loaded 2-core machine."""
    from support.servers import ServerProcess

    # the database first, so it is dropped only after the server has stopped
    db_url = request.getfixturevalue(
        "module_migrated_sqlite_url" if request.param == "sqlite" else "module_migrated_pg_url"
    )
    server = ServerProcess(db_url, tmp_path_factory.mktemp("db-server")).start()
    yield server
    server.close()


@pytest.fixture
def db_server(module_db_server: Any) -> AsOwnAdmin:
    """The module's server on SQLite, then on PostgreSQL, as an administrator of this test's own
    (``admin_token``): another test's agents never claim this test's jobs."""
    return AsOwnAdmin(module_db_server)


@pytest.fixture
def db_store(db_server: Any) -> Iterator[Any]:
    """An HttpStore on ``db_server``, as its admin."""
    from mltrail.store.http import HttpStore

    store = HttpStore(db_server.url, db_server.admin_token)
    yield store
    store.close()


@pytest.fixture
def http_store(server: Any) -> Iterator[Any]:
    """An HttpStore on the real server, as its admin."""
    from mltrail.store.http import HttpStore

    store = HttpStore(server.url, server.admin_token)
    yield store
    store.close()


@pytest.fixture(scope="module")
def module_server(
    module_migrated_urls: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """One real server (SQLite, a migrated database of its own) for a whole module, for tests
    that each use their own project. Its own: a server started earlier on the module's
    ``module_migrated_sqlite_url`` (``module_db_server``) made the administrator, and this one
    would print no admin token."""
    from support.servers import ServerProcess

    home = tmp_path_factory.mktemp("module-server")
    server = ServerProcess(module_migrated_urls("sqlite"), home).start()
    yield server
    server.close()
