"""mltrail side: a fresh ``mltrail server`` (SQLite file or fresh PostgreSQL database) on
loopback, and workloads run by :mod:`bench.mltrail_worker` in subprocesses."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import procs
from bench.disk import used_sqlite_bytes

REPO = Path(__file__).resolve().parent.parent
CLI = "from mltrail.cli.main import main; main()"
TOKEN_PATTERN = re.compile(r"\b(mlt_[A-Za-z0-9_\-]{16,})")
PG_ADMIN_URL = os.environ.get("MLTRAIL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class MltrailSide:
    """A fresh mltrail server and the environment its workers use to reach it.

    Args:
        workdir: scratch directory (database file, logs, MLTRAIL_HOME of the workers).
        db_url: the server's database; a fresh SQLite file under ``workdir`` by default.
        name: label for logs.
        query: appended to the SQLite URL, e.g. ``?synchronous=full``.
    """

    def __init__(
        self,
        workdir: Path,
        db_url: str | None = None,
        name: str = "sqlite",
        query: str = "",
        extra_args: tuple[str, ...] = (),
        token: str | None = None,
    ) -> None:
        self.db_path = workdir / f"mltrail-{name}.db"
        self.db_url = db_url or f"sqlite:///{self.db_path}{query}"
        self.home = workdir / f"home-{name}"
        self.home.mkdir(parents=True, exist_ok=True)
        port = procs.free_port()
        argv = [sys.executable, "-c", CLI, "server", "--db", self.db_url,
                "--host", procs.LOOPBACK, "--port", str(port), *extra_args]  # fmt: skip
        self.server = procs.Server(
            f"mltrail server ({name})",
            argv,
            port,
            workdir / f"mltrail-server-{name}.log",
            env=self._base_env(),
        )
        self.server.wait_ready("/healthz", timeout=60)
        self.server.wait_idle()
        self.token = token or self._read_token()  # a token only on a new database
        self.project = f"bench-{name}"

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
        env["MLTRAIL_HOME"] = str(self.home)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env

    def _read_token(self, timeout: float = 15.0) -> str:
        """The admin token the first start on an empty database prints once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = TOKEN_PATTERN.search(self.server.log_tail(100_000))
            if match:
                return match.group(1)
            time.sleep(0.1)
        raise RuntimeError(f"no token in the server's output:\n{self.server.log_tail()}")

    def worker_env(self) -> dict[str, str]:
        """What a training process sees: the server URL and token, no console capture."""
        env = self._base_env()
        env.update(MLTRAIL_URL=self.server.url, MLTRAIL_TOKEN=self.token, MLTRAIL_NO_CAPTURE="1")
        return env

    def run(
        self,
        workload: str,
        timeout: float = 1200,
        module: str = "bench.mltrail_worker",
        **args: Any,
    ) -> dict[str, Any]:
        """Run one workload of ``module`` (:mod:`bench.mltrail_worker`) against this server."""
        args.setdefault("project", self.project)
        argv = procs.python_worker(module, workload, args)
        return procs.run_json(argv, timeout=timeout, env=self.worker_env(), cwd=REPO)

    def spawn(self, workload: str, **args: Any) -> subprocess.Popen[str]:
        """Start a worker without waiting (concurrency, stalled server)."""
        args.setdefault("project", self.project)
        argv = procs.python_worker("bench.mltrail_worker", workload, args)
        return subprocess.Popen(argv, env=self.worker_env(), cwd=REPO, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip

    def used_db_bytes(self) -> int:
        return used_sqlite_bytes(self.db_path)

    def close(self) -> None:
        self.server.stop()


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str | None]:
    """A new PostgreSQL database (SQLAlchemy URL), dropped afterwards; None when unreachable."""
    try:
        import psycopg
    except ImportError:
        yield None
        return
    name = f"mltrail_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        yield None
        return
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
