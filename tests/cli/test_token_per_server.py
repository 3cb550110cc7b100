"""A token ``mltrail login`` saved goes to the server it was saved for, never to the server
another ``MLTRAIL_URL`` (or ``as_api(url=)``, ``sync --to``) names; an explicit token is sent
as asked. Real ``mltrail`` subprocesses against a real server, and a loopback HTTP server
standing in for a hostile one that records what it is sent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

import mltrail
from mltrail.config import (
    Settings,
    read_config_file,
    read_saved_tokens,
    save_token,
    server_key,
)
from mltrail.core.errors import AuthenticationError
from support.loopback import Answering, loopback_server


class _Recording(Answering):
    """Records each request's Authorization; answers 401 without one, an empty list with."""

    def do_GET(self) -> None:
        seen = self.headers.get("Authorization")
        self.server.seen.append(seen)  # type: ignore[attr-defined]
        if seen is None:
            status = 401
            body = b'{"error": {"type": "authentication_error", "field": "token", '
            body += b'"message": "missing API token"}}'
        else:
            status, body = 200, b"[]"
        self.answer(status, body)


class Recorder:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.url = f"http://127.0.0.1:{server.server_port}"
        self.seen: list[str | None] = server.seen  # type: ignore[attr-defined]


@pytest.fixture
def evil() -> Iterator[Recorder]:
    with loopback_server(_Recording, seen=[]) as server:
        yield Recorder(server)


def _env(home: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    return env | {"MLTRAIL_HOME": str(home)} | variables


def _mltrail(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mltrail", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_saved_token_never_leaves_for_another_server(shared_server, evil, tmp_path):
    """``MLTRAIL_URL=http://evil`` used to receive the token ``mltrail login`` saved."""
    token = shared_server.admin_token
    done = _mltrail(_env(tmp_path), "login", shared_server.url, "--token", token)
    assert done.returncode == 0, done.stderr
    listed = _mltrail(_env(tmp_path, MLTRAIL_URL=evil.url), "projects", "list")
    assert evil.seen and all(seen is None for seen in evil.seen)  # no token, in any request
    assert token not in listed.stderr + listed.stdout
    lines = listed.stderr.strip().splitlines()
    assert listed.returncode == 2 and len(lines) == 1, listed.stderr
    assert f"no token was sent to {evil.url}" in lines[0] and "mltrail login" in lines[0]
    # a token given explicitly goes where it is asked to
    asked = _mltrail(_env(tmp_path, MLTRAIL_URL=evil.url, MLTRAIL_TOKEN="mine"), "projects", "list")
    assert asked.returncode == 0, asked.stderr
    assert evil.seen[-1] == "Bearer mine"


def test_the_saved_token_reaches_its_server_however_its_url_is_spelled(shared_server, tmp_path):
    done = _mltrail(
        _env(tmp_path), "login", shared_server.url + "/", "--token", shared_server.admin_token
    )
    assert done.returncode == 0, done.stderr
    port = shared_server.url.rsplit(":", 1)[1]
    for spelled in (
        shared_server.url,
        f"HTTP://127.0.0.1:{port}/api/v1/",
        f"http://127.0.0.1:{port}//",
    ):
        listed = _mltrail(_env(tmp_path, MLTRAIL_URL=spelled), "projects", "list")
        assert listed.returncode == 0, (spelled, listed.stderr)


def test_login_keeps_each_servers_token(shared_server, evil, tmp_path):
    token = shared_server.admin_token
    assert _mltrail(_env(tmp_path), "login", shared_server.url, "--token", token).returncode == 0
    assert _mltrail(_env(tmp_path), "login", evil.url, "--token", "evil-only").returncode == 0
    saved = read_config_file(tmp_path / "config.toml")
    assert saved["MLTRAIL_URL"] == evil.url and "MLTRAIL_TOKEN" not in saved
    assert read_saved_tokens(tmp_path / "config.toml") == {
        server_key(shared_server.url): token,
        server_key(evil.url): "evil-only",
    }
    assert _mltrail(_env(tmp_path), "projects", "list").returncode == 0  # the file's url: evil
    assert evil.seen[-1] == "Bearer evil-only"
    back = _mltrail(_env(tmp_path, MLTRAIL_URL=shared_server.url), "projects", "list")
    assert back.returncode == 0, back.stderr  # its own token, not evil's


def test_an_old_files_bare_token_belongs_to_the_url_beside_it(shared_server, evil, tmp_path):
    """What ``mltrail login`` wrote before ``[tokens]``: ``url`` and ``token``."""
    token = shared_server.admin_token
    (tmp_path / "config.toml").write_text(f'url = "{shared_server.url}"\ntoken = "{token}"\n')
    assert _mltrail(_env(tmp_path), "projects", "list").returncode == 0
    leaked = _mltrail(_env(tmp_path, MLTRAIL_URL=evil.url), "projects", "list")
    assert leaked.returncode == 2 and evil.seen == [None]
    # logging in elsewhere moves it into [tokens] under its own server
    assert _mltrail(_env(tmp_path), "login", evil.url, "--token", "e").returncode == 0
    assert (
        Settings.from_env(
            {"MLTRAIL_HOME": str(tmp_path), "MLTRAIL_URL": shared_server.url}
        ).auth_token
        == token
    )


def test_a_bare_token_without_a_url_is_sent_nowhere(shared_server, tmp_path):
    (tmp_path / "config.toml").write_text(f'token = "{shared_server.admin_token}"\n')
    listed = _mltrail(_env(tmp_path, MLTRAIL_URL=shared_server.url), "projects", "list")
    lines = listed.stderr.strip().splitlines()
    assert listed.returncode == 2 and len(lines) == 1
    assert f"mltrail login {shared_server.url}" in lines[0]


def test_as_api_with_another_url_sends_no_saved_token(evil, tmp_path, monkeypatch):
    save_token(tmp_path / "config.toml", "http://127.0.0.1:1", "saved-for-another")
    monkeypatch.setenv("MLTRAIL_HOME", str(tmp_path))
    api = mltrail.as_api(evil.url)
    try:
        with pytest.raises(AuthenticationError, match="no token was sent"):
            api.projects.list()
    finally:
        api.close()
    assert evil.seen == [None]
    explicit = mltrail.as_api(evil.url, token="given")
    try:
        assert explicit.projects.list() == []
    finally:
        explicit.close()
    assert evil.seen[-1] == "Bearer given"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://Host.Example", "http://host.example:80"),
        ("https://h/", "https://h:443"),
        ("http://h:8080/base/api/v1/", "http://h:8080/base"),
        ("http://[::1]:5870", "http://[::1]:5870"),
        ("http://good@evil.example", None),  # user info: parsers disagree on the host
        ("http://good\\@evil.example", None),
        ("http://h:99999", None),
        ("ftp://h", None),
        ("http://", None),
        ("http://h\n.example", None),
    ],
)
def test_a_token_belongs_to_scheme_host_port_and_path(url: str, key: str | None) -> None:
    assert server_key(url) == key


def test_a_malformed_tokens_table_names_its_entry(tmp_path):
    (tmp_path / "config.toml").write_text('[tokens]\n"ftp://x" = "t"\n')
    with pytest.raises(ValueError, match=r"tokens: 'ftp://x'"):
        Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})


def test_the_token_stays_out_of_the_settings_repr():
    settings = Settings(url="http://h", token="secret", saved_tokens={"http://h:80": "kept"})
    assert "secret" not in repr(settings) and "kept" not in repr(settings)
