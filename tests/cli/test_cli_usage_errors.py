"""Bad usage is one line on stderr and exit 2; a command's own exit code is the process's."""

from __future__ import annotations

import click
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


def test_a_commands_exit_code_is_the_processs(capsys: pytest.CaptureFixture[str]) -> None:
    """`run --attach` raises click's Exit(1) for a run that did not end `done`: that is the
    exit status (Click returns, not raises, it outside standalone mode)."""

    @click.group()
    def group() -> None:
        pass

    @group.command()
    def fails() -> None:
        raise click.exceptions.Exit(3)

    @group.command()
    def succeeds() -> None:
        click.echo("ok")

    assert run_cli(group, ["fails"]) == 3
    assert run_cli(group, ["succeeds"]) == 0
    assert capsys.readouterr().out == "ok\n"
