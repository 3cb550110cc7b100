"""A huge value (a hyperparameter of megabytes) is cut in a CLI table, whole in ``-o json``."""

from __future__ import annotations

import json

import pytest

from mltrail.cli.common import MAX_VALUE_CHARS, run_cli
from mltrail.cli.main import cli


def test_a_huge_hyperparameter_is_cut_in_the_table_and_whole_in_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import mltrail

    big = "x" * 2_000_000
    api = mltrail.as_api()
    try:
        project = api.projects.create("wide")["project_id"]
        api.store.create_experiment(project, display_name="r", hyperparameters={"big": big})
    finally:
        api.close()
    capsys.readouterr()
    assert run_cli(cli, ["experiments", "list", "-p", "wide"]) == 0
    table = capsys.readouterr().out
    assert len(table) < 2 * MAX_VALUE_CHARS + 1_000  # it printed 2 MB over 13,000 lines
    assert "… (2,000,000 characters; -o json shows all)" in table
    assert run_cli(cli, ["experiments", "list", "-p", "wide", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["hyperparameters"]["big"] == big


def test_control_characters_in_a_value_are_shown_not_sent_to_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A hyperparameter another member logged reached the reader's terminal raw: ESC ] 0
    sets its title, ESC ] 52 writes its clipboard on some terminals, ESC [ 2J clears it."""
    import mltrail

    api = mltrail.as_api()
    try:
        project = api.projects.create("escapes")["project_id"]
        hyperparameters = {"lr\x1b[2J": "\x1b]52;c;cHduZWQ=\x07", "n": 1}
        api.store.create_experiment(project, display_name="r", hyperparameters=hyperparameters)
    finally:
        api.close()
    capsys.readouterr()
    assert run_cli(cli, ["experiments", "list", "-p", "escapes"]) == 0
    table = capsys.readouterr().out
    assert "\x1b" not in table and "\x07" not in table
    assert "lr\\x1b[2J=\\x1b]52;c;cHduZWQ=\\x07" in table
    assert run_cli(cli, ["experiments", "list", "-p", "escapes", "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)[0]["hyperparameters"]
    assert shown == hyperparameters  # JSON escapes them itself and keeps them whole
