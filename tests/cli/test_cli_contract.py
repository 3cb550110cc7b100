"""The CLI runs the contract's methods in a real subprocess: one-line errors, exit codes, JSON.

Each mode (embedded, real server) is set up once per module; every test seeds a project of its
own, with a weights hash of its own, so tests stay independent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest


@pytest.fixture(scope="module", params=["embedded", "server"])
def cli_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment for `mltrail` subprocesses: embedded (a fresh MLTRAIL_HOME) or a real server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path_factory.mktemp("cli-home"))
    if request.param == "server":
        server = request.getfixturevalue("shared_server")
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.admin_token}
    return env


def new_hash() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


def mltrail(
    env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mltrail", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"mltrail {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def seed(env: dict[str, str], weights_hash: str) -> str:
    """A project with experiments 1 and 2, both holding the hash, and a log line; its id."""
    code = f"""
import mltrail, time
from mltrail.core.types import LogBatch, LogLine, Status
api = mltrail.as_api()
p = api.projects.create("cli")["project_id"]
for _ in range(2):
    e = api.store.create_experiment(p, hyperparameters={{"lr": 0.1}}).experiment_id
    api.store.link_weights_hash(p, e, "{weights_hash}", iteration=e * 10, epoch=e)
api.store.append_logs(p, 2, LogBatch("c", 1, (LogLine(time.time(), "stdout", "INFO", "hello from 2"),)))
api.store.update_experiment(p, 2, status=Status.DONE)
print(p)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


def test_cli_runs_the_five_methods(cli_env):
    h = new_hash()
    p = seed(cli_env, h)
    mltrail(
        cli_env,
        "experiments",
        "update-metrics",
        "-p",
        p,
        "-e",
        "1",
        "--metrics",
        '{"ex_cost": 99, "note": "x"}',
    )
    out = mltrail(
        cli_env,
        "experiments",
        "update-metrics",
        "--weights-hash",
        h,
        "--metrics",
        '{"ex_all": true}',
    ).stdout
    assert f"project {p} experiment 1, project {p} experiment 2" in out
    out = mltrail(
        cli_env, "experiments", "update-chart", "-p", p, "-e", "2", "--chart-name", "pr",
        "--chart-x", "[1, 2]", "--chart-y", "[[0.1, 0.2], [0.3, 0.4]]", "--chart-y-name", '["p", "r"]',
    ).stdout  # fmt: skip
    assert "chart 'pr'" in out
    out = mltrail(
        cli_env,
        "experiments",
        "update-metrics-per-iteration",
        "--weights-hash",
        h,
        "--metrics",
        '{"ex_acc": 0.5}',
    ).stdout
    assert "updated 2 experiment iteration(s)" in out

    rows = json.loads(mltrail(cli_env, "experiments", "list", "-p", p, "-o", "json").stdout)
    assert rows[0]["ex_metrics"] == {"ex_cost": 99, "ex_note": "x", "ex_all": True}
    assert rows[1]["ex_metrics"] == {"ex_all": True}
    table = mltrail(cli_env, "experiments", "list", "-p", p).stdout
    assert "ex_cost" in table and "99" in table

    logs = mltrail(cli_env, "experiments", "logs", "-p", p).stdout
    assert "stdout INFO hello from 2" in logs
    assert "\x1b[" not in logs  # not a terminal: no colours


BAD_INPUT = [
    (["experiments", "update-metrics", "-p", "{p}", "--metrics", '{"ex_a": 1}'], "experiment:"),
    (["experiments", "update-metrics", "-e", "1", "--metrics", '{"ex_a": 1}'], "project:"),
    (
        ["experiments", "update-metrics", "-p", "{p}", "-e", "1", "--metrics", "{not json"],
        "metrics: not valid JSON",
    ),
    (
        ["experiments", "update-metrics", "--weights-hash", "f" * 40, "--metrics", '{"ex_a": 1}'],
        "weights_hash:",
    ),
    (
        ["experiments", "update-metrics", "-p", "{p}", "-e", "1", "--metrics", '{"ex_a": [1]}'],
        "metrics.ex_a:",
    ),
    (
        [
            "experiments",
            "update-chart",
            "-p",
            "{p}",
            "-e",
            "1",
            "--chart-name",
            "c",
            "--chart-x",
            "[1]",
            "--chart-y",
            "[1]",
            "--chart-scope",
            "prod",
        ],
        "chart_scope:",
    ),
    (
        [
            "experiments",
            "update-chart",
            "-p",
            "{p}",
            "-e",
            "1",
            "--chart-name",
            "c",
            "--chart-x",
            "[1, 2]",
            "--chart-y",
            "[1]",
        ],
        "chart_y:",
    ),
    (["experiments", "list", "-p", "999999"], "project:"),
    (["experiments", "logs", "-p", "{p}", "-e", "99"], "experiment:"),
    (
        [
            "experiments",
            "update-metrics-per-iteration",
            "--weights-hash",
            "f" * 40,
            "--metrics",
            '{"a": 1}',
        ],
        "weights_hash:",
    ),
]


def test_cli_bad_input_is_one_line_and_nonzero_and_writes_nothing(cli_env):
    p = seed(cli_env, new_hash())
    for args, needle in BAD_INPUT:
        proc = mltrail(cli_env, *(a.replace("{p}", p) for a in args), check=False)
        assert proc.returncode != 0, args
        assert needle in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    rows = json.loads(mltrail(cli_env, "experiments", "list", "-p", p, "-o", "json").stdout)
    assert [r["ex_metrics"] for r in rows] == [{}, {}]


def test_cli_wrong_token_is_one_line(tmp_path, shared_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {
        "MLTRAIL_HOME": str(tmp_path),
        "MLTRAIL_URL": shared_server.url,
        "MLTRAIL_TOKEN": "mlt_wrong",
    }
    proc = mltrail(env, "projects", "list", check=False)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "token" in proc.stderr.lower()


def test_cli_restores_a_deleted_project_by_name_beside_an_active_namesake(cli_env):
    name = f"cli-twin-{uuid.uuid4().hex[:8]}"

    def create() -> int:
        out = mltrail(cli_env, "projects", "create", name, "-o", "json").stdout
        return int(json.loads(out)["project_id"])

    first = create()
    mltrail(cli_env, "projects", "delete", "-p", str(first))
    second = create()  # active, same name: the name used to resolve to it ("not deleted")
    restored = mltrail(cli_env, "projects", "restore", "-p", name).stdout
    assert f"restored project {first}: {name}" in restored
    for pid in (first, second):
        mltrail(cli_env, "projects", "delete", "-p", str(pid))
    both = mltrail(cli_env, "projects", "restore", "-p", name, check=False)
    assert both.returncode != 0 and both.stderr.strip().count("\n") == 0, both.stderr
    assert "give the id" in both.stderr and str(first) in both.stderr and str(second) in both.stderr
    none = mltrail(cli_env, "projects", "restore", "-p", name + "-x", check=False)
    assert none.returncode != 0 and "no deleted project named" in none.stderr, none.stderr
    mltrail(cli_env, "projects", "restore", "-p", str(second))  # an id still works


def test_cli_renames_deletes_and_restores_a_project(cli_env):
    name = f"cli-life-{uuid.uuid4().hex[:8]}"
    pid = json.loads(mltrail(cli_env, "projects", "create", name, "-o", "json").stdout)[
        "project_id"
    ]
    assert (
        "renamed project" in mltrail(cli_env, "projects", "rename", "-p", name, name + "-2").stdout
    )
    mltrail(cli_env, "projects", "delete", "-p", str(pid))
    listed = mltrail(cli_env, "projects", "list", "--include", "deleted", "-o", "json").stdout
    assert (pid, name + "-2") in [(p["project_id"], p["display_name"]) for p in json.loads(listed)]
    again = mltrail(cli_env, "projects", "delete", "-p", str(pid), check=False)
    assert again.returncode != 0 and again.stderr.strip().count("\n") == 0
    assert "already deleted" in again.stderr
    mltrail(cli_env, "projects", "restore", "-p", str(pid))
    active = json.loads(mltrail(cli_env, "projects", "list", "-o", "json").stdout)
    assert pid in [p["project_id"] for p in active]  # an admin's list: other tests' too


def test_cli_refuses_a_project_name_that_several_projects_have(cli_env):
    # `-p NAME` took the lower id silently: the user's command could act on the wrong project
    name = f"cli-namesake-{uuid.uuid4().hex[:8]}"
    created = [mltrail(cli_env, "projects", "create", name, "-o", "json") for _ in range(2)]
    ids = [int(json.loads(c.stdout)["project_id"]) for c in created]
    listed = mltrail(cli_env, "experiments", "list", "-p", name, check=False)
    assert listed.returncode != 0 and listed.stderr.strip().count("\n") == 0, listed.stderr
    assert f"2 projects are named {name!r} (ids {ids[0]}, {ids[1]}): give the id" in listed.stderr
    mltrail(cli_env, "projects", "delete", "-p", str(ids[0]))
    mltrail(cli_env, "experiments", "list", "-p", name)  # the one active project of the name
