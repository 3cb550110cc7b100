"""A job runs as an OS user that cannot read its agent's token: real agents, a real server.

An agent running as root runs its jobs as ``--job-user`` (``nobody`` here): the job cannot read
the agent's ``config.toml`` (``mltrail login`` writes it, 0600), still records its run through
the SDK with its own token, and its whole process tree stays contained across the change of
user. An agent running jobs as its own user says at start which file they can read.
"""

from __future__ import annotations

import ast
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import (
    ESCAPING_JOB,
    final_job,
    process_alive,
    wait_for,
    wait_for_escaping_pids,
)

from mltrail.core.types import Status

AGENT_ARGS = ("--lease-timeout", "3", "--grace-period", "2", "--poll", "1")
JOB_USER = "nobody"
SITE = sysconfig.get_paths()["purelib"]  # this checkout's mltrail and its dependencies

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="changing a job's user needs an agent running as root"
)

# the job says who it is, tries the agent's token file and prints its environment (the standard
# library only: this runs wherever the checkout lives); given this checkout's site folder, it then
# records one metric through the SDK (with the token the agent put in its environment: its own)
READER_JOB = """
import os, sys
print("ids", os.getuid(), os.getgid(), os.getgroups(), flush=True)
try:
    print("read", open(sys.argv[1]).read(), flush=True)
except PermissionError:
    print("denied", sys.argv[1], flush=True)
print("environ", sorted(os.environ.items()), flush=True)
with open("written-by-the-job", "w") as f:  # its directory is its own
    f.write("ok")
if len(sys.argv) > 2:
    import site
    site.addsitedir(sys.argv[2])
    import mltrail
    with mltrail.start() as exp:
        exp.log({"seen": 1.0})
    print("recorded", flush=True)
"""


def _runs_as_job_user(python: str, *code: str) -> bool:
    user = pwd.getpwnam(JOB_USER)
    try:
        ok = subprocess.run(
            [python, "-c", "; ".join(code) or "pass"],
            user=user.pw_uid,
            group=user.pw_gid,
            extra_groups=[],
            cwd="/",
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return ok.returncode == 0


def _candidates() -> list[str]:
    return list(
        dict.fromkeys([sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3"])
    )


@pytest.fixture(scope="module")
def plain_python() -> str:
    """A Python the job user can run (the standard library only): /usr/bin/python3 at worst."""
    for candidate in _candidates():
        if _runs_as_job_user(candidate):
            return candidate
    pytest.fail(f"no Python that {JOB_USER} may run, not even /usr/bin/python3")


@pytest.fixture(scope="module")
def sdk_python() -> str:
    """A Python the job user can run and import this checkout's mltrail with (not when the
    checkout or its venv lies in a folder closed to the job user, such as /root)."""
    probe = (f"import site; site.addsitedir({SITE!r})", "import httpx, mltrail.sdk")
    for candidate in _candidates():
        if _runs_as_job_user(candidate, *probe):
            return candidate
    pytest.skip(f"{JOB_USER} cannot read this checkout's site folder {SITE}")


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """A work root the job user can reach (pytest's temporary directories are closed to it)."""
    path = Path(tempfile.mkdtemp(prefix="mltrail-test-jobs-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _messages(store: Any, job: Any) -> list[str]:
    return [m.message for m in store.read_logs(job.project_id, job.experiment_id, limit=1000)]


def _uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(row for row in f if row.startswith("Uid:")).split()[1])


def _run_reader(
    server: Any, agent_factory: Any, store: Any, work_dir: Path, *job_args: str
) -> tuple[Any, Path, list[str], Any]:
    project = store.create_project("job-user").id
    agent = agent_factory(
        server, *AGENT_ARGS, "--job-user", JOB_USER, "--work-dir", str(work_dir), token_file=True
    )
    config = agent.stderr_path.parent / "config.toml"
    assert server.admin_token in config.read_text()  # the agent's token: in its file only
    job = store.submit_job(project, [job_args[0], "-c", READER_JOB, str(config), *job_args[1:]])
    done = wait_for(lambda: final_job(store, job.job_id))
    messages = _messages(store, job)
    assert done.status is Status.DONE, messages
    return job, config, messages, agent


@needs_root
def test_a_job_of_a_root_agent_cannot_read_its_token(
    db_server: Any, agent_factory: Any, db_store: Any, plain_python: str, work_dir: Path
) -> None:
    job, config, messages, agent = _run_reader(
        db_server, agent_factory, db_store, work_dir, plain_python
    )
    user = pwd.getpwnam(JOB_USER)
    assert f"ids {user.pw_uid} {user.pw_gid} []" in messages  # no groups of the agent's
    assert f"denied {config}" in messages
    assert not any(m.startswith("read") for m in messages)
    assert not any(db_server.admin_token in m for m in messages)
    [environ] = [m for m in messages if m.startswith("environ")]
    assert str(config.parent) not in environ  # neither HOME nor MLTRAIL_HOME lead to the agent's
    assert f"('HOME', '{work_dir}/job-{job.job_id}-" in environ
    assert f"jobs run as {JOB_USER} (uid {user.pw_uid})" in agent.stderr
    assert "warning" not in agent.stderr
    assert list(work_dir.iterdir()) == []  # its directory went with it


@needs_root
def test_a_job_of_a_root_agent_records_its_run_with_its_own_token(
    db_server: Any, agent_factory: Any, db_store: Any, sdk_python: str, work_dir: Path
) -> None:
    job, _, messages, _ = _run_reader(
        db_server, agent_factory, db_store, work_dir, sdk_python, SITE
    )
    assert "recorded" in messages
    project = job.project_id
    assert [s.key for s in db_store.list_series(project, job.experiment_id)].count("seen") == 1
    assert db_store.get_experiment(project, job.experiment_id).status is Status.DONE


@needs_root
def test_stop_and_a_dead_agent_end_every_process_of_a_job_run_as_another_user(
    module_server: Any, agent_factory: Any, plain_python: str, work_dir: Path, tmp_path: Path
) -> None:
    from mltrail.store.http import HttpStore

    store = HttpStore(module_server.url, module_server.admin_token)
    project = store.create_project("job-user-contained").id
    # a queue of its own: the module's server is shared, and this job may outlive a failure
    queue = ("--queue", "contained")
    args = (*AGENT_ARGS, *queue, "--job-user", JOB_USER, "--work-dir", str(work_dir))
    closed = tmp_path / "closed.sh"  # pytest's directories are closed to the job user
    closed.write_text("#!/bin/sh\necho hi\n")
    closed.chmod(0o755)
    refused = store.submit_job(project, [str(closed)], queue="contained")
    stopped = store.submit_job(project, [plain_python, "-c", ESCAPING_JOB], queue="contained")
    orphaned = store.submit_job(project, [plain_python, "-c", ESCAPING_JOB], queue="contained")
    pids: list[int] = []
    try:
        first = agent_factory(module_server, *args)
        assert wait_for(lambda: final_job(store, refused.job_id)).exit_code == 126
        assert _messages(store, refused) == [
            f"command not executable by uid {pwd.getpwnam(JOB_USER).pw_uid}: {closed} "
            f"(jobs run as {JOB_USER}: the agent's --job-user must be able to run it)"
        ]
        found = wait_for_escaping_pids(store, stopped, first, module_server)
        pids += found.values()
        assert {_uid_of(p) for p in found.values()} == {pwd.getpwnam(JOB_USER).pw_uid}
        store.request_stop(project, stopped.experiment_id)
        assert wait_for(lambda: final_job(store, stopped.job_id)).status is Status.STOPPED
        wait_for(lambda: not any(process_alive(p) for p in found.values()), timeout=15)

        # the agent and the job's shim die at once: the job's processes outlive both...
        found = wait_for_escaping_pids(store, orphaned, first, module_server)
        pids += found.values()
        shim = int(Path(f"/proc/{found['main']}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(first.proc.pid, signal.SIGSTOP)  # frozen, it cannot sweep when its shim dies
        os.kill(shim, signal.SIGKILL)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        assert all(process_alive(p) for p in found.values())
        # ... until the next agent on the same work root starts: it kills them, as root
        agent_factory(module_server, *args)
        wait_for(lambda: not any(process_alive(p) for p in found.values()), timeout=30)
    finally:
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        store.close()


def test_an_agent_running_jobs_as_its_own_user_names_the_token_file_they_can_read(
    module_server: Any, agent_factory: Any
) -> None:
    from mltrail.store.http import HttpStore

    agent = agent_factory(module_server, *AGENT_ARGS, "--queue", "own-user", token_file=True)
    config = agent.stderr_path.parent / "config.toml"
    store = HttpStore(module_server.url, module_server.admin_token)
    project = store.create_project("own-user").id
    job = store.submit_job(
        project,
        [sys.executable, "-c", "import os; print(sorted(os.environ.items()))"],
        queue="own-user",
    )
    wait_for(lambda: final_job(store, job.job_id))
    warnings = [line for line in agent.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert str(config) in warnings[0] and "--job-user" in warnings[0]
    [printed] = _messages(store, job)
    environ = dict(ast.literal_eval(printed))
    assert module_server.admin_token not in printed
    # no variable names the agent's home or its file; the job's MLTRAIL_HOME is its own
    assert not {str(config), str(config.parent)} & set(environ.values())
    assert Path(environ["MLTRAIL_HOME"]).parent.name.startswith(f"job-{job.job_id}-")
    store.close()
