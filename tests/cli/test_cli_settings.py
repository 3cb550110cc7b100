"""A bad MLTRAIL_* value is one line and a non-zero exit from the CLI, not a traceback."""

from __future__ import annotations

import pytest

from mltrail.cli.common import run_cli
from mltrail.cli.main import cli


def test_a_bad_crash_after_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLTRAIL_CRASH_AFTER", "soon")
    assert run_cli(cli, ["projects", "list"]) == 1
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "Error: MLTRAIL_CRASH_AFTER: must be a positive number of seconds, got 'soon'"
    )
