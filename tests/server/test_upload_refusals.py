"""An artifact upload the store refuses (no membership, a declared size over the room left) is
answered before the server asks for its body: no ``100 Continue`` goes out before the refusal,
for a body the storing thread would read from the socket (the body tap) or through the event
loop alike."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from support.servers import ServerProcess, unique_name

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(
    module_migrated_urls: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One real server for the module (a start costs seconds); each test acts as users and in
    projects of its own, and closes the connections it held."""
    started = ServerProcess(module_migrated_urls("sqlite"), tmp_path_factory.mktemp("refusals"))
    yield started.start()
    started.close()


def _answer(port: int, head: bytes) -> bytes:
    """What the server sends for ``head`` alone (no body follows) until it closes or 10 s."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        while b"}" not in got.partition(b"\r\n\r\n")[2]:  # the JSON error's end
            data = conn.recv(65536)
            if not data:
                break
            got += data
    return got


def _experiment(server, auth: dict[str, str]) -> str:
    """A new project's experiment: its artifacts' URL path."""
    project = httpx.post(
        server.url + "/api/v1/projects", json={"display_name": "p"}, headers=auth
    ).json()["id"]
    experiment = httpx.post(
        server.url + f"/api/v1/projects/{project}/experiments", json={}, headers=auth
    ).json()["experiment_id"]
    return f"/api/v1/projects/{project}/experiments/{experiment}/artifacts"


@pytest.mark.parametrize("size", [8 * MIB, 1000], ids=["tapped", "small"])
def test_a_non_member_is_refused_before_any_100_continue(server, size):
    base = _experiment(server, {"Authorization": f"Bearer {server.make_token(unique_name())}"})
    stranger = server.make_token(unique_name())
    head = (
        f"PUT {base}/a.bin HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {stranger}\r\n"
        f"Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    answer = _answer(server.port, head)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert b"100 Continue" not in answer
    assert b'"permission_denied"' in answer


def test_a_refused_large_upload_closes_its_connection_unread(server):
    """Refused before its body was read (here: no token), a large body is not drained: the
    connection closes, so the client cannot make the server take in its gigabytes."""
    size = 256 * MIB
    head = (
        "PUT /api/v1/projects/1/experiments/1/artifacts/a.bin HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(head)
        answer = conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
        sent = 0
        piece = bytes(MIB)
        with pytest.raises(OSError):  # a reset or a broken pipe
            while sent < size:
                sent += conn.send(piece)
    assert sent < size // 2


def test_a_client_sending_a_refused_large_body_still_reads_its_refusal(server):
    """The closed connection does not hide the answer from a client that keeps sending."""
    url = server.url + "/api/v1/projects/1/experiments/1/artifacts/a.bin"
    refused = httpx.put(url, content=bytes(64 * MIB), headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"


def test_idle_uploads_do_not_take_the_threads_of_other_routes(server):
    """More uploads than the server has worker threads, each sending one byte of its body and
    then nothing: they wait in their own pool, and a listing (a worker-thread route) answers."""
    from mltrail.server.app import WORKER_THREADS

    token = server.make_token(unique_name())
    auth = {"Authorization": f"Bearer {token}"}
    base = _experiment(server, auth)
    idle = []
    try:
        for n in range(WORKER_THREADS + 6):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            idle.append(conn)
            conn.sendall(
                f"PUT {base}/idle-{n}.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: {8 * MIB}\r\n\r\nx".encode()
            )
        listed = httpx.get(server.url + base, headers=auth, timeout=10)
        assert listed.status_code == 200
        assert listed.json() == []
    finally:
        for conn in idle:
            conn.close()
