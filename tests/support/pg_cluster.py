"""A private PostgreSQL cluster for tests that must restart or stop the database.

The machine's shared cluster (127.0.0.1:5432) is never stopped or restarted by a test: a test
that needs a database restart starts its own cluster with ``initdb`` in a temporary folder, on a
free port, listening on 127.0.0.1 only, and removes it afterwards. As root (CI), the cluster runs
as the ``postgres`` system user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.servers import free_port

READY_TIMEOUT = 60.0


def _bindir() -> Path | None:
    """Where initdb and pg_ctl live (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PgCluster:
    """One throw-away PostgreSQL cluster: ``start()``, ``restart()``, ``stop()``, ``remove()``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mltrail-pg-"))
        self.data = self.root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{tool} failed: {done.stdout}{done.stderr}"
        return done

    def _pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-m", "fast", action
        )

    def start(self) -> PgCluster:
        self._pg_ctl("start")
        return self

    def restart(self) -> None:
        self._pg_ctl("restart")

    def stop(self) -> None:
        self._pg_ctl("stop")

    def started_at(self) -> float:
        import psycopg

        with psycopg.connect(self.url + "/postgres", connect_timeout=3) as conn:
            row = conn.execute("SELECT extract(epoch FROM pg_postmaster_start_time())").fetchone()
            assert row is not None
            return float(row[0])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"private PostgreSQL on port {self.port} did not come up")

    def remove(self) -> None:
        subprocess.run(
            [
                *(["runuser", "-u", self._user, "--"] if self._user else []),
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PgCluster]:
    """A running private cluster, removed after the test (skipped when PostgreSQL's tools are
    missing, except under CI, where that is a failure)."""
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("CI"):
            raise AssertionError("initdb / pg_ctl not found")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    cluster = PgCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
