"""``mltrail run / agent / agents list / jobs list`` as users type them, against a real server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from jobs_helpers import AS_TEST_USER, cli_env, run_cli, wait_for

from mltrail.core.types import Status


@pytest.fixture
def server(module_server: Any) -> Any:
    """Every test here shares one server; each works in its own project and queue."""
    return module_server


def _env(server: Any, home: Path, token: str | None = None) -> dict[str, str]:
    return cli_env(home, server.url, token or server.admin_token)


def test_agent_with_a_wrong_token_exits_with_one_clear_line(server: Any, tmp_path: Path) -> None:
    result = run_cli(
        ["agent", "--max-jobs", "1", *AS_TEST_USER], _env(server, tmp_path, "mlt_wrong"), timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "token" in lines[0].lower()
    assert "Traceback" not in result.stderr


def test_job_on_a_queue_nobody_serves_stays_queued_and_jobs_list_says_so(
    server: Any, http_store: Any, tmp_path: Path
) -> None:
    project = http_store.create_project("idle").id
    env = _env(server, tmp_path)
    result = run_cli(
        ["run", "-p", str(project), "--queue", "nobody", "--source", "none", "--", "echo", "hi"],
        env,
    )
    assert result.returncode == 0, result.stderr
    experiment = int(result.stdout.strip())
    assert "no live agent serves queue 'nobody'" in result.stderr
    listing = run_cli(["jobs", "list", "-p", str(project)], env)
    assert listing.returncode == 0
    assert "no agent serves queue 'nobody'" in listing.stdout and "queued" in listing.stdout
    assert "nobody" in listing.stderr
    [job] = http_store.list_jobs(project_id=project)
    assert (job.status, job.experiment_id, job.command) == (
        Status.QUEUED,
        experiment,
        ("echo", "hi"),
    )


def test_run_uploads_the_directory_and_attach_follows_the_logs_to_the_end(
    server: Any, agent_factory: Any, http_store: Any, tmp_path: Path
) -> None:
    project = http_store.create_project("attach").id
    workdir = tmp_path / "code"
    (workdir / "data").mkdir(parents=True)
    (workdir / "data" / "input.txt").write_text("from the tarball\n")
    (workdir / "train.py").write_text(
        "import os\nprint(open('data/input.txt').read().strip())\nprint('lr', os.environ['LR'])\n"
    )
    agent_factory(server, "--lease-timeout", "3", "--queue", "attach-q")
    args = [
        "run",
        "-p",
        str(project),
        "-q",
        "attach-q",
        "--env",
        "LR=0.1",
        "--display-name",
        "tar",
        "--attach",
        "--",
        sys.executable,
        "train.py",
    ]
    result = run_cli(args, _env(server, tmp_path), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "from the tarball" in result.stdout and "lr 0.1" in result.stdout
    experiment = int(result.stdout.splitlines()[0])
    got = http_store.get_experiment(project, experiment)
    assert (got.status, got.display_name) == (Status.DONE, "tar")


def test_stop_for_a_finished_experiment_is_a_clear_error(
    server: Any, agent_factory: Any, http_store: Any, tmp_path: Path
) -> None:
    project = http_store.create_project("stop").id
    job = http_store.submit_job(project, [sys.executable, "-c", "print(1)"], queue="stop-q")
    agent_factory(server, "--lease-timeout", "3", "--max-jobs", "1", "--queue", "stop-q")
    wait_for(lambda: http_store.get_job(job.job_id).status is Status.DONE)
    result = run_cli(
        ["experiments", "stop", "-p", str(project), "-e", str(job.experiment_id)],
        _env(server, tmp_path),
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: experiment: experiment {job.experiment_id} already ended (done)"
    ]


def test_agent_with_max_jobs_exits_and_agents_list_shows_it_gone(
    server: Any, agent_factory: Any, http_store: Any, tmp_path: Path
) -> None:
    project = http_store.create_project("max").id
    for i in range(2):
        http_store.submit_job(project, [sys.executable, "-c", f"print({i})"], queue="two")
    agent = agent_factory(
        server, "--lease-timeout", "3", "--queue", "two", "--max-jobs", "2", "--name", "worker-7"
    )
    assert agent.wait(60) == 0
    assert "ran 2 job(s)" in agent.stderr
    assert {j.status for j in http_store.list_jobs(project_id=project)} == {Status.DONE}
    listing = run_cli(["agents", "list"], _env(server, tmp_path))
    [row] = [line for line in listing.stdout.splitlines() if "worker-7" in line]
    assert listing.returncode == 0 and "two" in row and " no " in row
    as_json = run_cli(["agents", "list", "-o", "json"], _env(server, tmp_path))
    assert '"alive": false' in as_json.stdout and '"queues"' in as_json.stdout


def test_run_rejects_bad_input_naming_the_field(
    server: Any, http_store: Any, tmp_path: Path
) -> None:
    project = http_store.create_project("bad").id
    env = _env(server, tmp_path)
    bad_env = run_cli(["run", "-p", str(project), "--env", "NOEQUALS", "--", "echo"], env)
    assert (
        bad_env.returncode == 1
        and bad_env.stderr.strip() == "Error: env: must be KEY=VALUE, got 'NOEQUALS'"
    )
    bad_queue = run_cli(["run", "-p", str(project), "-q", "a b", "--", "echo"], env)
    assert bad_queue.returncode == 1 and bad_queue.stderr.startswith("Error: queue:")
    missing = run_cli(["run", "-p", "999", "--source", "none", "--", "echo"], env)
    assert missing.returncode == 1 and "project" in missing.stderr
    assert http_store.list_jobs(project_id=project) == []


def test_embedded_mode_run_and_agent_share_the_local_database(tmp_path: Path) -> None:
    from mltrail.store.sql import SqlStore

    env = cli_env(tmp_path / "home")
    assert run_cli(["projects", "create", "local"], env).returncode == 0
    submitted = run_cli(
        ["run", "-p", "1", "--source", "none", "--", sys.executable, "-c", "print('embedded ok')"],
        env,
    )
    assert submitted.returncode == 0, submitted.stderr
    agent = run_cli(["agent", "--max-jobs", "1", "--lease-timeout", "3", *AS_TEST_USER], env)
    assert agent.returncode == 0, agent.stderr
    store = SqlStore.open(f"sqlite:///{tmp_path / 'home' / 'mltrail.db'}")
    try:
        experiment = store.get_experiment(1, int(submitted.stdout.strip()))
        assert experiment.status is Status.DONE
        assert [x.message for x in store.read_logs(1, experiment.experiment_id)] == ["embedded ok"]
    finally:
        store.close()
