"""A typo'd flag or command, or a missing or bad option, is one line on stderr and exit 2."""

from __future__ import annotations

import pytest

from mltrail.cli.common import run_cli
from mltrail.cli.main import cli


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["experiments", "list", "-p", "1", "--bogus"], "Error: No such option '--bogus'."),
        (["experiments", "lst"], "Error: No such command 'lst'. Did you mean 'list'?"),
        (["experiments", "list"], "Error: Missing option '--project' / '-p'."),
        (
            ["experiments", "export", "-p", "1", "--format", "xml"],
            "Error: Invalid value for '--format': 'xml' is not one of 'csv', 'parquet', 'jsonl'.",
        ),
    ],
)
def test_bad_usage_is_one_line_naming_it_and_exit_2(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(cli, argv) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line]
    assert captured.out == ""
