"""Artifact bytes to and from a plain-HTTP server over a connection of their own
(``store/http/direct.py``). Downloads read the body into reused buffers: a whole body is saved,
a corrupted or cut-short one fails loudly and leaves the destination as it was, the server's
errors come back as the Store's, and a 503 is retried. Uploads from a local file go out with
sendfile, hashed meanwhile: the server stores exactly the file, and a file shorter than
announced fails without leaving an artifact. A one-connection-at-a-time fake server sends
exactly the bytes each test needs; the upload tests use a real server."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mltrail.api import Api
from mltrail.api.artifacts import ReadAhead, save_verified
from mltrail.core import codec
from mltrail.core.artifacts import Artifact, artifact_upload
from mltrail.core.errors import NotFoundError, ValidationError
from mltrail.core.wire import dump_json
from mltrail.store.artifacts import SendableFile
from mltrail.store.http import HttpStore
from support.servers import unique_name

DATA = os.urandom(3 * 1024 * 1024 + 7)


def record_header(data: bytes, size: int | None = None) -> str:
    artifact = Artifact(1, 1, "data/x.bin", hashlib.sha256(data).hexdigest(),
                        len(data) if size is None else size, "application/octet-stream", 0.0)  # fmt: skip
    return base64.urlsafe_b64encode(dump_json(codec.artifact_to_wire(artifact))).decode()


def ok_answer(body: bytes, record: str, length: int | None = None) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) if length is None else length}\r\n"
        f"X-Mltrail-Artifact: {record.rstrip('=')}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def json_answer(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


@pytest.fixture
def fake_server() -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """(url, answers to send in turn, request heads received)."""
    listener = socket.create_server(("127.0.0.1", 0))
    answers: list[bytes] = []
    heads: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(65536)
                heads.append(head)
                conn.sendall(answers.pop(0))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers, heads
    listener.close()


def test_a_whole_body_is_saved_and_the_token_sent(fake_server, tmp_path: Path) -> None:
    url, answers, heads = fake_server
    answers.append(ok_answer(DATA, record_header(DATA)))
    store = HttpStore(url, "mlt_secret_token_0123456789")
    assert store._http.lean is not None  # the direct path, not httpx
    reader = store.open_artifact(1, 1, "data/x.bin")
    assert reader.readinto is not None and reader.artifact.size == len(DATA)
    assert save_verified(reader, tmp_path / "x.bin").read_bytes() == DATA
    assert heads[0].startswith(b"GET /api/v1/projects/1/experiments/1/artifacts/data/x.bin ")
    assert b"Authorization: Bearer mlt_secret_token_0123456789" in heads[0]
    store.close()


@pytest.mark.parametrize("fault", ["corrupted", "cut short"])
def test_a_corrupted_or_cut_short_body_fails_and_keeps_the_destination(
    fake_server, tmp_path: Path, fault: str
) -> None:
    url, answers, _ = fake_server
    if fault == "corrupted":
        body = DATA[:1000] + bytes([DATA[1000] ^ 1]) + DATA[1001:]
        answers.append(ok_answer(body, record_header(DATA)))
    else:  # the connection closes a MiB before the announced length
        answers.append(ok_answer(DATA[: -1024 * 1024], record_header(DATA), len(DATA)))
    dest = tmp_path / "x.bin"
    dest.write_bytes(b"old")
    store = HttpStore(url, "t")
    with pytest.raises(ValidationError) as raised:
        save_verified(store.open_artifact(1, 1, "data/x.bin"), dest)
    assert raised.value.field == ("sha256" if fault == "corrupted" else "size")
    assert dest.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    store.close()


def test_the_chunks_of_a_direct_download_are_its_bytes(fake_server) -> None:
    url, answers, _ = fake_server
    answers.append(ok_answer(DATA, record_header(DATA)))
    store = HttpStore(url, "t")
    with store.open_artifact(1, 1, "data/x.bin") as reader:
        assert b"".join(reader.chunks) == DATA
    store.close()


def test_the_servers_error_is_raised_and_a_503_retried(fake_server) -> None:
    url, answers, heads = fake_server
    error = (
        b'{"error": {"type": "not_found", "message": "no artifact data/x.bin", "field": "path"}}'
    )
    answers += [json_answer("503 Service Unavailable", b"{}"), json_answer("404 Not Found", error)]
    store = HttpStore(url, "t", backoff=0.0)
    with pytest.raises(NotFoundError, match="no artifact"):
        store.open_artifact(1, 1, "data/x.bin")
    assert len(heads) == 2
    store.close()


def test_a_file_upload_goes_by_sendfile_and_is_stored_exactly(artifact_servers, tmp_path) -> None:
    proc, _ = artifact_servers("sqlite", "local")
    store = HttpStore(proc.url, proc.make_token(unique_name()))
    assert store._http.lean is not None  # the direct path, not httpx
    project = store.create_project("direct-up").id
    number = store.create_experiment(project).experiment_id
    source = tmp_path / "x.bin"
    source.write_bytes(DATA)
    with source.open("rb") as handle:
        assert isinstance(ReadAhead(handle), SendableFile)
    (stored,) = Api(store).artifacts.upload(project, number, source, "data/x.bin")
    assert stored["sha256"] == hashlib.sha256(DATA).hexdigest() and stored["size"] == len(DATA)
    back = Api(store).artifacts.download(project, number, "data/x.bin", tmp_path / "back.bin")
    assert back.read_bytes() == DATA
    store.close()


class ShorterFile:
    """A sendable source whose file holds fewer bytes than the upload announces."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("rb")

    def read(self, size: int = -1, /) -> bytes:
        raise AssertionError("a sendable file is sent, not read")

    def claim_file(self):
        return self.handle


def test_a_file_shorter_than_announced_fails_and_stores_nothing(artifact_servers, tmp_path) -> None:
    proc, _ = artifact_servers("sqlite", "local")
    store = HttpStore(proc.url, proc.make_token(unique_name()))
    project = store.create_project("direct-short").id
    number = store.create_experiment(project).experiment_id
    source = tmp_path / "x.bin"
    source.write_bytes(DATA)
    shorter = ShorterFile(source)
    upload = artifact_upload("data/x.bin", size=len(DATA) + 4096)
    with pytest.raises(ValidationError) as raised:
        store.put_artifact(project, number, upload, shorter)
    shorter.handle.close()
    assert raised.value.field == "size"
    assert store.list_artifacts(project, number) == []
    store.close()
