"""A bad MLTRAIL_* value is one line and a non-zero exit from the CLI, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from mltrail.cli.common import run_cli
from mltrail.cli.main import cli
from mltrail.config import Settings
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


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1", "Invalid IPv6 URL"),  # was httpx.InvalidURL's traceback
        ("http://h:99999", "Port out of range"),  # was urllib's ValueError traceback
        ("nope", "with a host"),  # was "cannot reach the mltrail server at nope"
        ("ftp://files", "with a host"),
    ],
)
def test_a_bad_server_url_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys, url: str, problem: str
) -> None:
    monkeypatch.setenv("MLTRAIL_URL", url)
    assert run_cli(cli, ["projects", "list"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: MLTRAIL_URL: must be an http")
    assert problem in err and repr(url) in err


def test_a_bad_url_in_the_config_file_names_the_file(tmp_path, capsys) -> None:
    (tmp_path / "config.toml").write_text('url = "http://h:port"\n')
    with pytest.raises(ValueError, match=r"config\.toml: url: must be an http"):
        Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})


@pytest.mark.parametrize("url", ["nope", "http://[::1", "http://alice@host"])
def test_login_refuses_a_bad_url_before_asking_for_the_token(tmp_path, url: str) -> None:
    """A typo used to be noticed only after the token prompt (Aborted on a closed stdin), and
    'http://[::1' was a ValueError traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "login", url],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2 and "Token:" not in done.stdout + done.stderr
    assert "Error: Invalid value for 'URL': must" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "config.toml").exists()


def test_sync_to_a_bad_url_is_one_line(capsys) -> None:
    assert run_cli(cli, ["sync", "--to", "http://[::1"]) == 2
    assert "Invalid value for '--to': must be an http" in capsys.readouterr().err


@pytest.mark.parametrize("token", ["mlt_a\nb", "mlt_é", "mlt_a b", "mlt_\x01"])
def test_a_token_no_header_can_carry_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys, token: str
) -> None:
    """A newline was 'cannot reach the mltrail server' (a typo taken for an outage, which the
    SDK would spool behind), 'é' a UnicodeEncodeError traceback, a control character the
    server's 400 about malformed headers with a version-skew hint."""
    monkeypatch.setenv("MLTRAIL_URL", "http://127.0.0.1:1")  # never reached
    monkeypatch.setenv("MLTRAIL_TOKEN", token)
    assert run_cli(cli, ["projects", "list"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: token: must be printable ASCII")
    assert "cannot reach" not in err


def test_missinglink_config_writes_no_token_that_would_add_lines(
    monkeypatch: pytest.MonkeyPatch, capsys, tmp_path
) -> None:
    monkeypatch.setenv("MLTRAIL_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("MLTRAIL_TOKEN", "mlt_x\napi_host = http://evil.example")
    written = tmp_path / "missinglink.cfg"
    assert run_cli(cli, ["missinglink", "config", "--output", str(written)]) == 1
    assert "token: must be printable ASCII" in capsys.readouterr().err
    assert not written.exists()


def test_a_pasted_tokens_surrounding_whitespace_is_dropped(tmp_path) -> None:
    env = {"MLTRAIL_URL": "http://h", "MLTRAIL_TOKEN": " mlt_abc\n"}
    assert Settings.from_env(env, config_file=tmp_path / "none.toml").auth_token == "mlt_abc"


@pytest.mark.parametrize(
    "command",
    [["server", "--port", "99999"], ["server", "--port", "-1"], ["ui", "--port", "70000"]],
)
def test_a_port_out_of_range_is_one_line_naming_the_option(capsys, command) -> None:
    """Was bind()'s OverflowError traceback after the database was opened."""
    assert run_cli(cli, command) == 2
    err = capsys.readouterr().err
    assert "Error: Invalid value for '--port'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("option", "value"),
    [("--poll", "nan"), ("--poll", "-1"), ("--poll", "inf"), ("--grace-period", "-5"),
     ("--grace-period", "inf")],
)  # fmt: skip
def test_an_agent_wait_that_is_no_finite_number_of_seconds_is_refused(
    capsys, option: str, value: str
) -> None:
    """'--poll nan' was socket.settimeout's ValueError traceback once the agent ran; -1, inf
    and a negative or endless grace period were taken as given."""
    assert run_cli(cli, ["agent", "--max-jobs", "1", option, value]) == 2
    err = capsys.readouterr().err
    assert f"Error: Invalid value for '{option}': must be from 0 to" in err
