"""Search and lifecycle from the shell and the SDK, in real subprocesses: embedded, and against
real servers on SQLite and PostgreSQL. ``-p`` takes a project name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from cli.test_cli_contract import mltrail as run

SEED = """
import mltrail
for i, (lr, opt) in enumerate([(0.1, "adam"), (0.01, "sgd"), (0.001, "adam"), (0.01, "adam")]):
    exp = mltrail.start(project={project!r}, hyperparams={{"lr": lr, "optimizer": opt}},
                        tags=["baseline"] if i < 2 else [])
    for it in range(5):
        exp.log({{"loss": 1.0 / (it + 1 + i)}}, iteration=it)
    exp.log({{"loss": 0.5 - 0.1 * i}}, phase="validation", iteration=5)
    if i == 3:
        exp.set_name("adam-small-lr")
        exp.set_description("the one to beat")
        exp.add_tags("best", "keep")
        exp.remove_tags("keep")
        exp.set_notes("# Winner\\n\\nlr 0.01 with **adam**")
    exp.end()
"""


@pytest.fixture(scope="module", params=["embedded", "server-sqlite", "server-pg"])
def cli_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path_factory.mktemp("cli-search-home"))
    if request.param != "embedded":
        name = "shared_server" if request.param == "server-sqlite" else "shared_pg_server"
        server = request.getfixturevalue(name)
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.admin_token}
    return env


def listed(env: dict[str, str], project: str, *args: str) -> list[dict]:
    out = run(env, "experiments", "list", "-p", project, "--output-format", "json", *args)
    return json.loads(out.stdout)


def seeded(env: dict[str, str]) -> str:
    project = f"cifar-{uuid.uuid4().hex[:8]}"
    code = SEED.format(project=project)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return project


def test_filter_and_sort_by_project_name(cli_env: dict[str, str]) -> None:
    project = seeded(cli_env)
    rows = listed(
        cli_env,
        project,
        "--filter",
        "metrics.validation/loss < 0.45 and params.optimizer = 'adam'",
        "--sort",
        "metrics.validation/loss asc",
    )
    assert [r["experiment_id"] for r in rows] == [4, 3]
    best = rows[0]
    assert (best["display_name"], best["description"], best["tags"]) == (
        "adam-small-lr",
        "the one to beat",
        ["best"],
    )
    assert best["notes"] == "# Winner\n\nlr 0.01 with **adam**"
    by_lr = listed(
        cli_env, project, "--sort", "params.lr desc", "--sort", "id desc", "--limit", "3"
    )
    assert [r["experiment_id"] for r in by_lr] == [1, 4, 2]
    assert [
        r["experiment_id"] for r in listed(cli_env, project, "--filter", "tags = 'baseline'")
    ] == [1, 2]


def test_bad_filter_and_unknown_project_are_one_line(cli_env: dict[str, str]) -> None:
    project = seeded(cli_env)
    bad = run(cli_env, "experiments", "list", "-p", project, "--filter", "params.lr >", check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "Error: filter: expected a value (a quoted string, a number, true or false) "
        "at position 11: end of input"
    ]
    unknown = run(cli_env, "experiments", "list", "-p", "no-such-project", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "Error: project: no project named 'no-such-project'"
    ]


def test_trash_archive_restore_purge(cli_env: dict[str, str]) -> None:
    project = seeded(cli_env)
    run(cli_env, "experiments", "delete", "-p", project, "-e", "2")
    run(cli_env, "experiments", "archive", "-p", project, "-e", "1")
    assert [r["experiment_id"] for r in listed(cli_env, project)] == [3, 4]
    states = {r["experiment_id"]: r["state"] for r in listed(cli_env, project, "--include", "all")}
    assert states == {1: "archived", 2: "deleted", 3: "active", 4: "active"}
    run(cli_env, "experiments", "restore", "-p", project, "-e", "2")
    purged = run(cli_env, "experiments", "purge", "-p", project, "-e", "1", "--yes")
    assert "purged" in purged.stdout
    assert [r["experiment_id"] for r in listed(cli_env, project, "--include", "all")] == [2, 3, 4]
    gone = run(cli_env, "experiments", "get", "-p", project, "-e", "1", check=False)
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    run(cli_env, "experiments", "rename", "-p", project, "-e", "3", "small-lr")
    run(cli_env, "experiments", "tag", "-p", project, "-e", "3", "x", "y")
    row = listed(cli_env, project, "--filter", "name = 'small-lr' and tags = 'y'")
    assert [(r["experiment_id"], r["tags"]) for r in row] == [(3, ["x", "y"])]
