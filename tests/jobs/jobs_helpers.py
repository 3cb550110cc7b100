"""Helpers shared by the remote-execution tests (a module of its own: several test folders
have a conftest.py, so `from conftest import ...` would be ambiguous)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from support.servers import unique_name

LAUNCH = "import sys; from mltrail.cli.main import main; main(sys.argv[1:])"
# agents started by tests run jobs as the test's user unless a test names another
AS_TEST_USER = ("--job-user", str(os.geteuid()))


class AsOwnAdmin:
    """A server shared by several tests, as one test sees it: ``admin_token`` is the token of an
    administrator of that test's own; everything else is the server's.

    A test's jobs and agents on a shared server belong to a user of its own: an agent
    claims only its own user's jobs, and a job's ``queue_served`` counts only agents that would
    take it, so an earlier test's agents (killed, yet alive for their lease) never touch this
    test's jobs. (An agent killed during its long poll keeps no job: the server stops polling
    once it has gone, and hands back a job its claim took while it went.)"""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.admin_token: str = server.make_token(unique_name("admin"), admin=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy and return it; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def cli_env(home: Path, url: str | None = None, token: str | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: no inherited MLTRAIL_*, this home, url and token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(home)
    if url:
        env["MLTRAIL_URL"] = url
    if token:
        env["MLTRAIL_TOKEN"] = token
    return env


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``mltrail ARGS`` in a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# the job starts a setsid grandchild and a double-forked daemon, prints every pid, then sleeps.
# Each line is one write(2): jobs run unbuffered (PYTHONUNBUFFERED), where print() writes its
# pieces one by one, and the daemon's line then lands inside main's ("setsiddaemon 17423" then
# " 17421"): the pids were never all found and the test timed out now and then
ESCAPING_JOB = """
import os, subprocess, sys, time
def say(name, pid):
    os.write(1, f"{name} {pid}\\n".encode())
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        say("daemon", os.getpid())
        time.sleep(600)
    os._exit(0)
say("setsid", child.pid)
say("main", os.getpid())
time.sleep(600)
"""


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def escaping_pids(store: Any, job: Any) -> dict[str, int] | None:
    """The pids :data:`ESCAPING_JOB` printed, once it printed all three."""
    pids = {}
    for line in store.read_logs(job.project_id, job.experiment_id, limit=1000):
        name, _, pid = line.message.partition(" ")
        if name in ("daemon", "setsid", "main") and pid.isdigit():
            pids[name] = int(pid)
    return pids if len(pids) == 3 else None


def wait_for_escaping_pids(
    store: Any,
    job: Any,
    agent: Any,
    server: Any = None,
    timeout: float = 60.0,
    other_than: Collection[int] = (),
) -> dict[str, int]:
    """The pids :data:`ESCAPING_JOB` printed (none of ``other_than``, an earlier attempt's), or a
    failure saying what the job, its agent, its server and the machine's processes did instead."""

    def printed() -> dict[str, int] | None:
        pids = escaping_pids(store, job)
        return pids if pids and set(pids.values()).isdisjoint(other_than) else None

    try:
        return wait_for(printed, timeout=timeout)  # type: ignore[no-any-return]
    except AssertionError as exc:
        lines = store.read_logs(job.project_id, job.experiment_id, limit=1000)
        tree = subprocess.run(
            ["ps", "-eo", "pid,ppid,stat,etime,args", "--forest"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        raise AssertionError(
            f"{exc}\njob: {store.get_job(job.job_id)}\n"
            f"its log: {[(x.stream, x.message) for x in lines][-20:]}\n"
            f"agent stderr (tail): {agent.stderr[-3000:]}\n"
            f"server stderr (tail): {server.stderr[-3000:] if server is not None else '-'}\n"
            f"processes:\n{tree[-6000:]}"
        ) from exc


def final_job(store: Any, job_id: int) -> Any:
    """The job once it has ended, else None."""
    job = store.get_job(job_id)
    return job if job.status.is_final else None
