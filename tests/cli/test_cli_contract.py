"""The CLI runs the contract's methods in a real subprocess: one-line errors, exit codes, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HASH = "e" * 40


@pytest.fixture
def cli_env(request: pytest.FixtureRequest, tmp_path) -> dict[str, str]:
    """Environment for `mltrail` subprocesses: embedded (a fresh MLTRAIL_HOME) or a real server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path / "home")
    if getattr(request, "param", "embedded") == "server":
        server = request.getfixturevalue("server_factory")(f"sqlite:///{tmp_path / 'server.db'}")
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.admin_token}
    return env


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


def seed(env: dict[str, str]) -> None:
    """Project 1 with experiments 1 and 2, both holding HASH, and a log line, via the Python API."""
    code = f"""
import mltrail, time
from mltrail.core.types import LogBatch, LogLine
api = mltrail.as_api()
p = api.projects.create("cli")["project_id"]
for _ in range(2):
    e = api.store.create_experiment(p, hyperparameters={{"lr": 0.1}}).experiment_id
    api.store.link_weights_hash(p, e, "{HASH}", iteration=e * 10, epoch=e)
api.store.append_logs(p, 2, LogBatch("c", 1, (LogLine(time.time(), "stdout", "INFO", "hello from 2"),)))
api.store.update_experiment(p, 2, status=mltrail.core.types.Status.DONE)
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


@pytest.mark.parametrize("cli_env", ["embedded", "server"], indirect=True)
def test_cli_runs_the_five_methods(cli_env):
    seed(cli_env)
    mltrail(
        cli_env,
        "experiments",
        "update-metrics",
        "-p",
        "1",
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
        HASH,
        "--metrics",
        '{"ex_all": true}',
    ).stdout
    assert "project 1 experiment 1, project 1 experiment 2" in out
    out = mltrail(
        cli_env,
        "experiments",
        "update-chart",
        "-p",
        "1",
        "-e",
        "2",
        "--chart-name",
        "pr",
        "--chart-x",
        "[1, 2]",
        "--chart-y",
        "[[0.1, 0.2], [0.3, 0.4]]",
        "--chart-y-name",
        '["p", "r"]',
    ).stdout
    assert "chart 'pr'" in out
    out = mltrail(
        cli_env,
        "experiments",
        "update-metrics-per-iteration",
        "--weights-hash",
        HASH,
        "--metrics",
        '{"ex_acc": 0.5}',
    ).stdout
    assert "updated 2 experiment iteration(s)" in out

    rows = json.loads(mltrail(cli_env, "experiments", "list", "-p", "1", "-o", "json").stdout)
    assert rows[0]["ex_metrics"] == {"ex_cost": 99, "ex_note": "x", "ex_all": True}
    assert rows[1]["ex_metrics"] == {"ex_all": True}
    table = mltrail(cli_env, "experiments", "list", "-p", "1").stdout
    assert "ex_cost" in table and "99" in table

    logs = mltrail(cli_env, "experiments", "logs", "-p", "1").stdout
    assert "stdout INFO hello from 2" in logs
    assert "\x1b[" not in logs  # not a terminal: no colours


@pytest.mark.parametrize("cli_env", ["embedded", "server"], indirect=True)
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["experiments", "update-metrics", "-p", "1", "--metrics", '{"ex_a": 1}'], "experiment:"),
        (["experiments", "update-metrics", "-e", "1", "--metrics", '{"ex_a": 1}'], "project:"),
        (
            ["experiments", "update-metrics", "-p", "1", "-e", "1", "--metrics", "{not json"],
            "metrics: not valid JSON",
        ),
        (
            [
                "experiments",
                "update-metrics",
                "--weights-hash",
                "f" * 40,
                "--metrics",
                '{"ex_a": 1}',
            ],
            "weights_hash:",
        ),
        (
            [
                "experiments",
                "update-chart",
                "-p",
                "1",
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
        (["experiments", "list", "-p", "99"], "project:"),
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
    ],
)
def test_cli_bad_input_is_one_line_and_nonzero(cli_env, args, needle):
    seed(cli_env)
    proc = mltrail(cli_env, *args, check=False)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_wrong_token_is_one_line(tmp_path, server_factory):
    server = server_factory(f"sqlite:///{tmp_path / 's.db'}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_HOME": str(tmp_path), "MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": "mlt_wrong"}
    proc = mltrail(env, "projects", "list", check=False)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "token" in proc.stderr.lower()
