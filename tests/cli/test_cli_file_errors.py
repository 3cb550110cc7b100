"""A file the CLI cannot write or read is one line naming it and exit 1, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mltrail.cli.common import run_cli
from mltrail.cli.main import cli


def test_an_export_to_a_missing_folder_is_one_line_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(cli, ["projects", "create", "vision"]) == 0
    target = tmp_path / "no-such-folder" / "history.csv"
    capsys.readouterr()
    assert run_cli(cli, ["experiments", "export", "-p", "vision", "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"Error: {target}.partial: No such file or directory"]
    assert not target.parent.exists()
