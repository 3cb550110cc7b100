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
