"""A folder download trusts no path the server lists: one that is not a clean path inside
the folder is refused before anything is written. A loopback HTTP server plays a hostile
(or broken) mltrail server; a real one never lists such a path."""

from __future__ import annotations

import base64
import hashlib
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from mltrail.api import Api
from mltrail.config import Settings
from mltrail.core.errors import ValidationError
from support.loopback import loopback_server

BYTES = b"pwned\n"


def _record(path: str) -> dict[str, object]:
    return {
        "project": 1, "experiment": 1, "path": path, "media_type": "text/plain",
        "sha256": hashlib.sha256(BYTES).hexdigest(), "size": len(BYTES), "created_at": 0.0,
    }  # fmt: skip


class _Hostile(BaseHTTPRequestHandler):
    """The folder ``x`` is no file (404); its listing holds ``x/a.txt`` and the server's
    ``listed`` path; any other artifact is :data:`BYTES`, with a record that matches them."""

    def do_GET(self) -> None:
        listed = self.server.listed  # type: ignore[attr-defined]
        self.server.fetched.append(self.path)  # type: ignore[attr-defined]
        headers = {"Content-Type": "application/json"}
        if self.path.endswith("/artifacts/x"):
            status = 404
            body = b'{"error": {"type": "not_found", "field": "path", "message": "no file"}}'
        elif "/artifacts?" in self.path:
            status, body = 200, json.dumps([_record("x/a.txt"), _record(listed)]).encode()
        else:
            status, body = 200, BYTES
            record = base64.urlsafe_b64encode(json.dumps(_record("x/a.txt")).encode())
            headers["X-Mltrail-Artifact"] = record.decode()
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("listed", ["x/../../escaped.txt", "x//tmp/escaped.txt", "y/escaped.txt"])
def test_a_listed_path_outside_the_folder_writes_nothing(tmp_path: Path, listed: str) -> None:
    """On main a.txt was written first and the bad path refused only when its turn came (half
    a download left behind), or, for 'y/escaped.txt', written into the folder as escaped.txt
    (its first two characters cut off as if they were 'x/')."""
    dest = tmp_path / "dest" / "inner"
    with loopback_server(_Hostile, listed=listed, fetched=[]) as server:
        url = f"http://127.0.0.1:{server.server_port}"
        api = Api.from_settings(Settings(url=url, token="t", home=tmp_path / "home"))
        try:
            with pytest.raises(ValidationError, match="not a path inside it") as refused:
                api.artifacts.download(1, 1, "x", dest)
        finally:
            api.close()
        fetched = server.fetched  # type: ignore[attr-defined]
    assert refused.value.field == "path"
    assert len(fetched) == 2  # the folder's open and its listing: no file was asked for
    assert not dest.exists() and not (tmp_path / "escaped.txt").exists()
