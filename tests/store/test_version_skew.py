"""A client newer than its server: what the server does not know (a field, a route) fails with
both versions and what to do, not a bare 422/404 that reads as the client's bug. The server is
a real process (mltrail as installed); the client is made newer by its version string."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mltrail.core import version
from mltrail.core.errors import MltrailError, NotFoundError, ValidationError
from mltrail.store.http import HttpStore
from mltrail.store.http.skew import explain_skew
from support.servers import ServerProcess

NEWER = "99.0.0"


@pytest.fixture
def store(shared_server: ServerProcess) -> Iterator[HttpStore]:
    with HttpStore(shared_server.url, shared_server.admin_token) as opened:
        yield opened  # type: ignore[misc]


@pytest.fixture
def server(shared_server: ServerProcess) -> str:
    """The version the server process says it runs."""
    answer = httpx.get(
        f"{shared_server.url}/api/v1/identity",
        headers={"Authorization": f"Bearer {shared_server.admin_token}"},
    )
    return str(answer.json()["version"])


def _project(store: HttpStore) -> int:
    return store.create_project(f"skew-{uuid.uuid4().hex[:8]}").id


def _asked(store: HttpStore, method: str, path: str, body: object = None) -> MltrailError:
    with pytest.raises(MltrailError) as raised:
        store._http.call(method, path, body=body)
    return raised.value


def test_a_field_the_server_does_not_know_names_both_versions(
    store: HttpStore, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(version, "__version__", NEWER)
    error = _asked(store, "POST", "/projects", {"display_name": "p", "colour": "red"})
    assert isinstance(error, ValidationError) and error.field == "colour"
    assert str(error).startswith("colour: unknown field")
    assert f"the server runs mltrail {server} and this client mltrail {NEWER}" in str(error)
    assert f"upgrade the server to mltrail {NEWER}, or use a client of mltrail {server}" in str(
        error
    )


@pytest.mark.parametrize(
    ("method", "route", "kind"),
    [
        ("GET", "/experiments/compare", ValidationError),  # read as /experiments/{id}
        ("GET", "/nosuch", NotFoundError),
        ("POST", "/experiments/compare", MltrailError),  # 405
    ],
)
def test_a_route_the_server_does_not_know_names_both_versions(
    store: HttpStore,
    server: str,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    route: str,
    kind: type,
) -> None:
    project = _project(store)
    monkeypatch.setattr(version, "__version__", NEWER)
    error = _asked(store, method, f"/projects/{project}{route}", {} if method == "POST" else None)
    assert isinstance(error, kind)
    assert f"the server runs mltrail {server} and this client mltrail {NEWER}" in str(error)
    assert "may be too old for this request" in str(error)


def test_with_the_same_version_the_error_is_the_servers_own(store: HttpStore) -> None:
    error = _asked(store, "POST", "/projects", {"display_name": "p", "colour": "red"})
    assert (
        str(error) == "colour: unknown field: this server does not take it (is the client newer?)"
    )
    project = _project(store)
    error = _asked(store, "GET", f"/projects/{project}/experiments/compare")
    assert "mltrail" not in str(error)


def test_a_server_that_does_not_say_its_version_is_named_possibly_older(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(A proxy answering /identity itself, a server before it had a version field.)"""
    monkeypatch.setattr(version, "__version__", NEWER)
    refused = ValidationError("Extra inputs are not permitted", "colour")
    explained = explain_skew(refused, lambda: None)
    assert type(explained) is ValidationError and explained.field == "colour"
    assert str(explained) == (
        "colour: Extra inputs are not permitted (the server did not say its version; it may "
        f"be older than this client (mltrail {NEWER}): upgrade the server to mltrail {NEWER})"
    )


class _SignInPage(BaseHTTPRequestHandler):
    """A server behind a proxy that answers ``/identity`` with its sign-in page (200, HTML)
    and refuses a field as an older server would."""

    def do_GET(self) -> None:
        self._answer(200, "text/html", b"<html><body>Sign in</body></html>")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        error = {"type": "validation_error", "field": "colour", "message": "unknown field"}
        self._answer(422, "application/json", json.dumps({"error": error}).encode())

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_identity_that_is_no_json_leaves_the_servers_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hint is extra: /identity answered with a page (a proxy's sign-in) raised the JSON
    parser's ValueError in place of the server's 422."""
    monkeypatch.setattr(version, "__version__", NEWER)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SignInPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with (
            HttpStore(f"http://127.0.0.1:{server.server_port}", "t", retries=0) as opened,
            pytest.raises(ValidationError) as raised,
        ):
            opened._http.call("POST", "/projects", body={"display_name": "p", "colour": "red"})
    finally:
        server.shutdown()
        server.server_close()
    assert raised.value.field == "colour"
    assert str(raised.value).startswith("colour: unknown field (the server did not say its version")
