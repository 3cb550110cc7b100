"""A bad MLTRAIL_* value is one line and a non-zero exit from the CLI, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from mltrail.cli.common import run_cli
from mltrail.cli.main import cli
from mltrail.store.http import HttpStore


def test_a_bad_crash_after_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLTRAIL_CRASH_AFTER", "soon")
    assert run_cli(cli, ["projects", "list"]) == 1
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "Error: MLTRAIL_CRASH_AFTER: must be a positive number of seconds, got 'soon'"
    )


def test_an_empty_variable_leaves_the_config_files_value(shared_server, tmp_path) -> None:
    """``MLTRAIL_URL=`` (an empty variable, as a CI template or ``env -u``-less shell leaves
    it) used to override the file's ``url`` and drop the CLI into embedded mode on an empty
    database; it counts as unset, so the command talks to the file's server."""
    name = f"empty-env-{uuid.uuid4().hex[:8]}"
    with HttpStore(shared_server.url, shared_server.admin_token) as store:
        store.create_project(name)
    (tmp_path / "config.toml").write_text(
        f'url = "{shared_server.url}"\ntoken = "{shared_server.admin_token}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_HOME": str(tmp_path), "MLTRAIL_URL": "", "MLTRAIL_TOKEN": " "}
    listed = subprocess.run(
        [sys.executable, "-m", "mltrail", "projects", "list"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout
    assert not (tmp_path / "mltrail.db").exists()  # no embedded database made
