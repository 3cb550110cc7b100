"""AgentRunner in-process on a real SQLite SqlStore: bad jobs, tarball jobs, a forgotten agent."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest

from mltrail.agent.runner import AgentOptions, AgentRunner
from mltrail.api import Api
from mltrail.api.snapshots import build_tarball
from mltrail.config import Settings
from mltrail.core.types import Status
from mltrail.store.sql import SqlStore
from mltrail.store.sql.tables import agents


@pytest.fixture
def store(sqlite_store: SqlStore) -> SqlStore:
    return sqlite_store


def _runner(store: SqlStore, tmp_path: Path, max_jobs: int) -> AgentRunner:
    options = AgentOptions(
        max_jobs=max_jobs,
        lease_seconds=3,
        poll_seconds=0.5,
        grace_seconds=1,
        work_root=tmp_path / "work",
        flush_seconds=0.05,
    )
    return AgentRunner(Api(store), options, settings=Settings.from_env(), child_env=os.environ)


def _logs(store: SqlStore, job) -> list[str]:
    return [x.message for x in store.read_logs(job.project_id, job.experiment_id)]


def test_a_job_whose_directory_cannot_be_made_fails_and_the_next_one_runs(
    store: SqlStore, tmp_path: Path
) -> None:
    project = store.create_project("bad").id
    broken = store.submit_job(
        project, ["true"], source={"kind": "git", "url": str(tmp_path / "nope"), "commit": "a" * 40}
    )
    good = store.submit_job(project, [sys.executable, "-c", "print('fine')"])
    runner = _runner(store, tmp_path, max_jobs=2)
    assert runner.run() == 2
    failed = store.get_job(broken.job_id)
    assert (
        failed.status is Status.FAILED and "could not prepare the working directory" in failed.error
    )
    assert _logs(store, broken)[-1].startswith(
        "could not prepare the working directory: clone failed"
    )
    assert store.get_job(good.job_id).status is Status.DONE and _logs(store, good) == ["fine"]
    assert list((tmp_path / "work").iterdir()) == []  # job directories are removed


def test_a_tarball_job_runs_in_its_own_copy_of_the_files(store: SqlStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("from the snapshot")
    project = store.create_project("tar").id
    job = store.submit_job(
        project,
        [sys.executable, "-c", "import os; print(open('hello.txt').read()); print(os.getcwd())"],
        source={"kind": "tarball"},
        snapshot=build_tarball(src, limit=1_000_000),
    )
    _runner(store, tmp_path, max_jobs=1).run()
    message, cwd = _logs(store, job)
    assert message == "from the snapshot"
    assert Path(cwd).parent == tmp_path / "work" and not Path(cwd).exists()


def test_an_agent_the_store_forgot_registers_again(store: SqlStore, tmp_path: Path) -> None:
    project = store.create_project("forgot").id
    runner = _runner(store, tmp_path, max_jobs=1)
    runner._register()
    with store._db.write() as conn:  # as after a database restore
        conn.execute(agents.delete())
    assert runner._claim() is None
    assert [a.agent_id for a in store.list_agents()] == [runner.agent_id]
    job = store.submit_job(project, ["true"])
    assert runner._claim().job_id == job.job_id


def test_the_job_environment_sets_mltrail_variables_over_the_agents(
    store: SqlStore, tmp_path: Path
) -> None:
    project = store.create_project("env").id
    job = store.submit_job(project, ["true"], env={"A": "1"})
    options = AgentOptions(lease_seconds=3, work_root=tmp_path)
    runner = AgentRunner(
        Api(store),
        options,
        settings=Settings(url="http://server:1", token="tok", home=Path("/h")),
        child_env={"PATH": "/bin", "MLTRAIL_TOKEN": "agent-own", "MLTRAIL_HOME": "/elsewhere"},
    )
    env = runner.job_env(dataclasses.replace(job, token="mltj_the-jobs-own"))
    assert env["A"] == "1" and env["PATH"] == "/bin" and env["MLTRAIL_HOME"] == "/h"
    # the job's own token, never the agent's (from its settings or its environment)
    assert (env["MLTRAIL_URL"], env["MLTRAIL_TOKEN"]) == ("http://server:1", "mltj_the-jobs-own")
    assert not {"tok", "agent-own"} & set(env.values())
    assert (env["MLTRAIL_PROJECT"], env["MLTRAIL_EXPERIMENT"]) == (
        str(project),
        str(job.experiment_id),
    )
    assert env["MLTRAIL_NO_CAPTURE"] == "1"


def test_a_run_that_ends_cleanly_after_a_stop_request_is_stopped(
    store: SqlStore, tmp_path: Path
) -> None:
    """The SDK swallows ExperimentStopped and exits 0; the stop must not be reported as done."""
    import threading
    import time

    project = store.create_project("clean-stop").id
    job = store.submit_job(project, [sys.executable, "-c", "import time; time.sleep(1.5)"])
    options = AgentOptions(max_jobs=1, lease_seconds=60, poll_seconds=0.5, work_root=tmp_path)
    runner = AgentRunner(
        Api(store), options, settings=Settings.from_env(), child_env=os.environ
    )  # heartbeats every 20 s: none here
    thread = threading.Thread(target=runner.run)
    thread.start()
    deadline = time.monotonic() + 30
    while store.get_job(job.job_id).status is Status.QUEUED and time.monotonic() < deadline:
        time.sleep(0.05)
    store.request_stop(project, job.experiment_id)
    thread.join(60)
    done = store.get_job(job.job_id)
    assert (done.status, done.exit_code) == (Status.STOPPED, 0)


def test_any_agent_name_gives_a_valid_agent_id(store: SqlStore, tmp_path: Path) -> None:
    for name in ("my box (gpu #2)", "---", "é"):
        runner = AgentRunner(
            Api(store),
            AgentOptions(name=name, work_root=tmp_path),
            settings=Settings(),
            child_env={},
        )
        runner._register()
        [agent] = [a for a in store.list_agents() if a.agent_id == runner.agent_id]
        assert agent.name == name
