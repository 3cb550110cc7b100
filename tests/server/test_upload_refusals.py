"""An artifact upload the store refuses (no membership, a declared size over the room left) is
answered before the server asks for its body: no ``100 Continue`` goes out before the refusal,
for a body the storing thread would read from the socket (the body tap) or through the event
loop alike."""

from __future__ import annotations

import socket

import httpx
import pytest

from support.servers import unique_name

MIB = 1024 * 1024


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


@pytest.mark.parametrize("size", [8 * MIB, 1000], ids=["tapped", "small"])
def test_a_non_member_is_refused_before_any_100_continue(server, size):
    owner = {"Authorization": f"Bearer {server.make_token(unique_name())}"}
    project = httpx.post(
        server.url + "/api/v1/projects", json={"display_name": "p"}, headers=owner
    ).json()["id"]
    experiment = httpx.post(
        server.url + f"/api/v1/projects/{project}/experiments", json={}, headers=owner
    ).json()["experiment_id"]
    stranger = server.make_token(unique_name())
    head = (
        f"PUT /api/v1/projects/{project}/experiments/{experiment}/artifacts/a.bin HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {stranger}\r\n"
        f"Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    answer = _answer(server.port, head)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert b"100 Continue" not in answer
    assert b'"permission_denied"' in answer
