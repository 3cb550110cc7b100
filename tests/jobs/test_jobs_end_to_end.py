"""A real server, real agent processes, real commands: the issue's "done when".

Agents run with a 3 s lease and a 2 s grace period so these tests stay quick.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import AsOwnAdmin, wait_for

from mltrail.core.types import Status, is_system_metric

AGENT_ARGS = ("--lease-timeout", "3", "--grace-period", "2", "--poll", "2")
PY = sys.executable


def _py(code: str) -> list[str]:
    return [PY, "-c", code]


def _final(store: Any, job_id: int) -> Any:
    job = store.get_job(job_id)
    return job if job.status.is_final else None


def _messages(store: Any, job: Any, stream: str | None = None) -> list[str]:
    lines: list[Any] = []
    while True:
        batch = store.read_logs(
            job.project_id, job.experiment_id, after_seq=lines[-1].seq if lines else 0, limit=50_000
        )
        if not batch:
            break
        lines.extend(batch)
    return [x.message for x in lines if stream is None or x.stream == stream]


def _logged(store: Any, job: Any, text: str) -> bool:
    return any(text in m for m in _messages(store, job))


def test_two_agents_run_every_job_once_with_statuses_exit_codes_and_logs(
    db_server: Any, agent_factory: Any, db_store: Any
) -> None:
    project = db_store.create_project("remote").id
    submit = lambda command, **kw: db_store.submit_job(project, command, **kw)  # noqa: E731
    many = submit(_py("for i in range(100000): print(i)"), display_name="many lines")
    ok = submit(_py("import sys; print('hello'); print('to stderr', file=sys.stderr)"))
    failing = submit(_py("import sys; print('about to fail'); sys.exit(3)"))
    missing = submit(["no-such-command-mltrail-test"])
    env = submit(
        _py(
            "import os; print(*[os.environ.get(k) for k in ('MLTRAIL_PROJECT', 'MLTRAIL_EXPERIMENT',"
            " 'MLTRAIL_NO_CAPTURE', 'MLTRAIL_URL', 'FOO')])"
        ),
        env={"FOO": "bar"},
    )
    stoppable = submit(_py("import time; print('started', flush=True); time.sleep(600)"))
    stubborn = submit(
        _py(
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('ignoring SIGTERM', flush=True); time.sleep(600)"
        )
    )
    agents = [agent_factory(db_server, *AGENT_ARGS), agent_factory(db_server, *AGENT_ARGS)]

    wait_for(lambda: _logged(db_store, stoppable, "started"))
    db_store.request_stop(project, stoppable.experiment_id)
    wait_for(lambda: _logged(db_store, stubborn, "ignoring SIGTERM"))
    asked = time.monotonic()
    db_store.request_stop(project, stubborn.experiment_id)
    jobs = {
        j.job_id: wait_for(lambda j=j: _final(db_store, j.job_id), timeout=120)
        for j in (many, ok, failing, missing, env, stoppable, stubborn)
    }
    assert time.monotonic() - asked >= 2  # the grace period was honoured before SIGKILL

    expected = {
        many.job_id: (Status.DONE, 0),
        ok.job_id: (Status.DONE, 0),
        failing.job_id: (Status.FAILED, 3),
        missing.job_id: (Status.FAILED, 127),
        env.job_id: (Status.DONE, 0),
        stoppable.job_id: (Status.STOPPED, -signal.SIGTERM),
        stubborn.job_id: (Status.STOPPED, -signal.SIGKILL),
    }
    assert {k: (j.status, j.exit_code) for k, j in jobs.items()} == expected, [
        j.error for j in jobs.values()
    ]
    for job in jobs.values():
        experiment = db_store.get_experiment(project, job.experiment_id)
        assert experiment.status is job.status and experiment.ended_at is not None

    assert _messages(db_store, many, "stdout") == [str(i) for i in range(100_000)]
    assert _messages(db_store, ok, "stdout") == ["hello"]
    assert _messages(db_store, ok, "stderr") == ["to stderr"]
    assert _messages(db_store, failing, "agent") == ["exited with code 3"]
    assert _messages(db_store, missing, "agent") == [
        "command not found: no-such-command-mltrail-test"
    ]
    assert _messages(db_store, env, "stdout") == [
        f"{project} {env.experiment_id} 1 {db_server.url} bar"
    ]
    assert _messages(db_store, stoppable, "agent") == ["stopped on request"]

    # no job ran twice: one claim each, one start line each across both agents' logs
    assert all(j.attempts == 1 for j in jobs.values())
    starts = [
        int(m)
        for a in agents
        for m in re.findall(r"job (\d+): .*\(project \d+, experiment \d+\)", a.stderr)
    ]
    assert sorted(starts) == sorted(jobs)
    assert len({j.agent_id for j in jobs.values()}) == 2  # both agents worked
    assert all(a.proc.poll() is None for a in agents)  # a bad job never kills an agent


def _pid_from_logs(store: Any, job: Any) -> int:
    for message in _messages(store, job, "stdout"):
        if message.startswith("pid "):
            return int(message.split()[1])
    return 0


def _kill_gone_or_not(pid: int) -> None:
    """SIGKILL the job's process, as a dead machine would, if its killed agent has not taken
    it down already (the shim's PR_SET_PDEATHSIG; on a quiet machine it is gone by now)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _run_once_then_finish(marker: Path) -> list[str]:
    """First run: leave a marker, print its pid and hang. Later runs: finish at once."""
    return _py(
        "import os, sys, time\n"
        f"marker = {str(marker)!r}\n"
        "if os.path.exists(marker):\n    print('second run'); sys.exit(0)\n"
        "open(marker, 'w').close(); print('pid', os.getpid(), flush=True); time.sleep(600)\n"
    )


def test_sigkilled_agent_lease_expires_and_the_job_is_requeued(
    db_server: Any, agent_factory: Any, db_store: Any, tmp_path: Path
) -> None:
    project = db_store.create_project("crash").id
    job = db_store.submit_job(project, _run_once_then_finish(tmp_path / "marker"), max_retries=1)
    doomed = agent_factory(db_server, *AGENT_ARGS)
    pid = wait_for(lambda: _pid_from_logs(db_store, job))
    doomed.kill()
    _kill_gone_or_not(pid)
    rescuer = agent_factory(db_server, *AGENT_ARGS)
    done = wait_for(lambda: _final(db_store, job.job_id), timeout=60)
    assert (done.status, done.exit_code, done.attempts) == (Status.DONE, 0, 2)
    assert done.agent_id in rescuer.stderr and done.agent_id not in doomed.stderr
    assert _messages(db_store, job, "stdout") == [f"pid {pid}", "second run"]
    assert db_store.get_experiment(project, job.experiment_id).status is Status.DONE


@pytest.fixture
def own_server(module_server: Any) -> AsOwnAdmin:
    """The module's shared server (SQLite) as an administrator of this test's own: for the
    tests that neither restart their server nor need both databases."""
    return AsOwnAdmin(module_server)


@pytest.fixture
def own_store(own_server: AsOwnAdmin) -> Iterator[Any]:
    from mltrail.store.http import HttpStore

    with HttpStore(own_server.url, own_server.admin_token) as store:
        yield store


def test_sigkilled_agent_without_retries_leaves_the_job_failed(
    own_server: Any, agent_factory: Any, own_store: Any, tmp_path: Path
) -> None:
    server, http_store = own_server, own_store
    project = http_store.create_project("crash").id
    job = http_store.submit_job(project, _run_once_then_finish(tmp_path / "marker"))
    doomed = agent_factory(server, *AGENT_ARGS)
    pid = wait_for(lambda: _pid_from_logs(http_store, job))
    doomed.kill()
    _kill_gone_or_not(pid)
    # nobody else polls: listing jobs is enough to notice the expired lease
    failed = wait_for(
        lambda: next(
            (j for j in http_store.list_jobs(project_id=project) if j.status is Status.FAILED), None
        ),
        timeout=30,
    )
    assert failed.job_id == job.job_id and failed.attempts == 1
    assert "lease expired" in (failed.error or "")
    assert http_store.get_experiment(project, job.experiment_id).status is Status.FAILED


SDK_SCRIPT = """
import time
import mltrail
with mltrail.start() as exp:
    for i in range(100000):
        exp.log({"loss": 1.0 / (i + 1)})
        if i == 5:
            print("training", flush=True)
        time.sleep(0.02)
"""


def test_the_sdk_inside_a_job_attaches_to_its_experiment_and_sees_the_stop(
    own_server: Any, agent_factory: Any, own_store: Any
) -> None:
    server, http_store = own_server, own_store
    project = http_store.create_project("sdk").id
    job = http_store.submit_job(project, [PY, "-c", SDK_SCRIPT], display_name="sdk run")
    agent_factory(server, *AGENT_ARGS)
    wait_for(lambda: _logged(http_store, job, "training"))
    [before] = wait_for(lambda: _training_series(http_store, project, job.experiment_id))
    http_store.request_stop(project, job.experiment_id)
    done = wait_for(lambda: _final(http_store, job.job_id), timeout=60)
    assert done.status is Status.STOPPED
    page = http_store.list_experiments(project)
    assert page.total == 1  # attached, not a second experiment
    experiment = page.items[0]
    assert (experiment.display_name, experiment.status) == ("sdk run", Status.STOPPED)
    [series] = _training_series(http_store, project, job.experiment_id)
    assert series.key == "loss" and series.count >= before.count >= 1
    # the agent sampled the job's system metrics (the job's SDK was told not to)
    system = {s.key: s.count for s in http_store.list_series(project, job.experiment_id)}
    assert system.get("system/cpu/process_percent", 0) >= 1
    assert system.get("system/memory/process_rss_mb", 0) >= 1


def _training_series(store: Any, project: int, experiment: int) -> list[Any]:
    return [s for s in store.list_series(project, experiment) if not is_system_metric(s.key)]


def test_a_server_restart_mid_job_loses_and_doubles_no_output(
    server: Any, agent_factory: Any, http_store: Any
) -> None:
    project = http_store.create_project("restart").id
    code = "import time\nfor i in range(80):\n    print(i, flush=True)\n    time.sleep(0.1)\n"
    job = http_store.submit_job(project, _py(code))
    agent = agent_factory(server, "--lease-timeout", "30", "--poll", "2")
    wait_for(lambda: _logged(http_store, job, "5"))
    server.stop()
    time.sleep(1.0)
    server.start()
    done = wait_for(lambda: _final(http_store, job.job_id), timeout=120)
    assert (done.status, done.exit_code, done.attempts) == (Status.DONE, 0, 1)
    assert _messages(http_store, job, "stdout") == [str(i) for i in range(80)]
    assert agent.proc.poll() is None
