"""An answer that is not mltrail's JSON (a Wi-Fi or proxy sign-in page answering 200, another
program at the URL) is one TransportError naming what came, never a JSONDecodeError."""

from __future__ import annotations

import pytest

from mltrail.cli.common import run_cli
from mltrail.cli.main import cli
from mltrail.core.errors import TransportError
from mltrail.store.http import HttpStore
from support.loopback import Answering, loopback_server

PAGE = b"<html><body>Sign in to the Wi-Fi</body></html>"


class _SignIn(Answering):
    def _sign_in(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(200, PAGE, "text/html")

    do_GET = do_POST = _sign_in


def test_a_sign_in_page_is_a_transport_error_naming_it() -> None:
    with loopback_server(_SignIn) as server:
        url = f"http://127.0.0.1:{server.server_port}"
        with HttpStore(url, "t", retries=0) as store, pytest.raises(TransportError) as raised:
            store.list_projects()
    assert raised.value.answered == 200
    assert "not mltrail's JSON" in str(raised.value) and "Sign in to the Wi-Fi" in str(raised.value)


@pytest.mark.parametrize("command", [["projects", "list"], ["projects", "create", "p"]])
def test_the_cli_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys, command) -> None:
    """Was a JSONDecodeError traceback from every command."""
    with loopback_server(_SignIn) as server:
        monkeypatch.setenv("MLTRAIL_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("MLTRAIL_TOKEN", "t")
        assert run_cli(cli, command) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: the server answered HTTP 200")


class _OtherShape(Answering):
    """JSON, but not mltrail's: what another program, or a server of another version, says."""

    def do_GET(self) -> None:
        self.answer(200, b'{"weird": 1}')


@pytest.mark.parametrize(
    ("command", "method"),
    [
        (["projects", "list"], "list_projects"),
        (["experiments", "list", "-p", "1"], "search_experiments"),
        (["experiments", "get", "-p", "1", "-e", "1"], "get_experiment"),
        (["jobs", "list"], "list_jobs"),
    ],
)
def test_json_of_another_shape_is_one_line_naming_the_call(
    monkeypatch: pytest.MonkeyPatch, capsys, command, method
) -> None:
    """Was a KeyError, TypeError or AttributeError traceback, whichever the shape met first."""
    with loopback_server(_OtherShape) as server:
        url = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("MLTRAIL_URL", url)
        monkeypatch.setenv("MLTRAIL_TOKEN", "t")
        assert run_cli(cli, command) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"Error: the server at {url} answered {method} in a shape this client")


def test_a_bad_argument_is_still_the_callers_error() -> None:
    """Raised before any answer came, a TypeError is the caller's: it passes unchanged."""
    with HttpStore("http://127.0.0.1:1", "t", retries=0) as store, pytest.raises(TypeError):
        store.get_project()  # type: ignore[call-arg]
