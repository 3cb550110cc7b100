"""A bad ``--db`` URL is one line and a non-zero exit, and never shows its password."""

from __future__ import annotations

import pytest

from mltrail.cli.common import run_cli
from mltrail.cli.main import cli


@pytest.mark.parametrize("command", [["db", "upgrade"], ["token", "create", "--user", "u"]])
def test_an_unreachable_postgresql_is_one_line_without_its_password(capsys, command) -> None:
    """psycopg's reason spans two lines and SQLAlchemy adds a third (a link); the URL was
    printed whole, password and all."""
    url = "postgresql+psycopg://alice:hunter2@127.0.0.1:1/mltrail"  # port 1: refused
    assert run_cli(cli, [*command, "--db", url]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "hunter2" not in err and "alice:***@127.0.0.1:1" in err
    assert "Connection refused" in err


@pytest.mark.parametrize("command", [["db", "upgrade"], ["token", "create", "--user", "u"]])
def test_sqlite_without_a_path_is_refused_naming_the_url(capsys, command) -> None:
    """'sqlite:///' was SQLAlchemy's TypeError traceback (a pool argument an in-memory
    database takes not); a token made there would vanish with the process anyway."""
    assert run_cli(cli, [*command, "--db", "sqlite:///"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "Error: db_url: sqlite:/// names no file: sqlite:///PATH (sqlite:// is a database in memory)"
    )
