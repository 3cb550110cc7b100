"""An upload whose sender trickles (a byte every few seconds, each under the 300 s a receive may
wait) is cut once it falls below the minimum average rate after its grace: a 408 naming the
body, the connection closed, the upload thread free again. An honest slow sender, even one
that stalls for a while after sending plenty, is not cut.

The server is the real app and protocol (``mltrail server``'s uvicorn options) on a real
socket in this process, so the pace's constants can be made seconds instead of minutes."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from mltrail.config import Settings
from mltrail.server import body_tap, create_app
from mltrail.server.http_protocol import LARGE_BODY_BYTES, uvicorn_options
from mltrail.store.blobs import open_blobs
from mltrail.store.sql import SqlStore

GRACE = 1.0
RATE = 2000  # bytes a second, on average, once the grace is over


class Served:
    """The real app on SQLite, served by uvicorn with mltrail's protocol in a thread."""

    def __init__(self, home: Path) -> None:
        self.store = SqlStore.open(
            f"sqlite:///{home / 'pace.db'}", blobs=open_blobs(home / "blobs")
        )
        self.alice = self.store.as_user(self.store.auth.create_user("alice"))
        self.token = self.store.auth.create_token("alice")
        project = self.alice.create_project("paced").id
        run = self.alice.create_experiment(project, display_name="r")
        self.run = (project, run.experiment_id)
        self.path = f"/api/v1/projects/{project}/experiments/{run.experiment_id}/artifacts"
        app = create_app(Settings(home=home), self.store, allowed_hosts=["*"])
        self.sock = socket.create_server(("127.0.0.1", 0))
        config = uvicorn.Config(app, log_level="warning", **uvicorn_options())
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive()
            time.sleep(0.02)

    def upload(self, name: str, size: int) -> socket.socket:
        """A connection that sent an upload's head declaring ``size`` bytes, no body yet."""
        conn = socket.create_connection(self.sock.getsockname(), timeout=60)
        conn.sendall(
            f"PUT {self.path}/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        return conn

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
        self.store.close()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setattr(body_tap, "GRACE_SECONDS", GRACE)
    monkeypatch.setattr(body_tap, "MIN_BYTES_PER_SECOND", RATE)
    started = Served(tmp_path)
    yield started
    started.close()


def _answer(conn: socket.socket, closes: bool = False) -> tuple[int, dict, bytes]:
    """The status and body; with ``closes``, also whatever followed it until the server
    closed (b"" when it closed right after the answer). Without it the connection is left
    open: a kept-alive one closes only after the server's keep-alive timeout (5 s)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        assert more, f"closed without an answer after {data!r}"
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))  # fmt: skip
    while len(rest) < length:
        more = conn.recv(65536)
        assert more
        rest += more
    after = b""
    conn.settimeout(10)
    while closes and (more := conn.recv(65536)):  # the server closes the connection
        after += more
    return int(head.split(b" ")[1]), json.loads(rest[:length]), after


def _trickle_until_answered(conn: socket.socket, seconds: float) -> bool:
    """Send a byte every 0.4 s (2.5 B/s) until the server answers; whether it did."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        conn.sendall(b"x")
        if select.select([conn], [], [], 0.4)[0]:
            return True
    return False


@pytest.mark.parametrize("size", [LARGE_BODY_BYTES * 4, 50_000], ids=["tapped", "through-loop"])
def test_a_trickling_upload_is_cut_with_a_408_naming_the_body(served: Served, size: int) -> None:
    conn = served.upload("trickle.bin", size)
    # main: each receive may wait 300 s, so the trickle was never cut
    assert _trickle_until_answered(conn, 30), "the trickle was not cut"
    status, error, after = _answer(conn, closes=True)
    conn.close()
    assert status == 408 and after == b"", error  # and the connection closed
    assert error["error"]["field"] == "body"
    assert error["error"]["message"].startswith(
        f"the body arrived slower than {RATE // 1024} KiB/s on average after its first 1 s ("
    )
    again = served.upload("next.bin", 10)  # the upload thread is free again
    again.sendall(b"0123456789")
    status, _, _ = _answer(again)
    assert status == 201


def test_an_honest_slow_sender_is_not_cut(served: Served) -> None:
    """Three times the minimum rate for 4 s, through the grace and past it."""
    size = 24_000
    conn = served.upload("slow.bin", size)
    for _ in range(size // 1000):
        conn.sendall(b"s" * 1000)
        time.sleep(1000 / (3 * RATE))
    status, record, _ = _answer(conn)
    assert status == 201 and record["size"] == size


def test_a_stall_after_plenty_was_sent_is_not_cut(served: Served) -> None:
    """The rate is an average: a sender that stalls (a wifi hand-over) after sending half a
    MiB has earned minutes of waiting."""
    size = LARGE_BODY_BYTES * 2
    conn = served.upload("stall.bin", size)
    conn.sendall(b"a" * (size // 4))
    time.sleep(3 * GRACE)
    conn.sendall(b"b" * (size - size // 4))
    status, record, _ = _answer(conn)
    assert status == 201 and record["size"] == size


@pytest.mark.parametrize("token", [False, True], ids=["anonymous", "with-token"])
def test_a_trickled_request_body_of_any_route_is_cut(served: Served, token: bool) -> None:
    """Only uploads had a pace: a JSON body (a project's creation, read by FastAPI before the
    token check) trickled a byte every 0.4 s held its connection for as long as its sender
    liked, without a token too (thousands of them: the server's file descriptors)."""
    conn = socket.create_connection(served.sock.getsockname(), timeout=60)
    auth = f"Authorization: Bearer {served.token}\r\n" if token else ""
    conn.sendall(
        f"POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n".encode()
    )
    # main: never answered, the connection kept open
    assert _trickle_until_answered(conn, 30), "the trickle was not cut"
    status, error, after = _answer(conn, closes=True)
    conn.close()
    assert status == 408 and after == b"", error  # and the connection closed
    assert error["error"]["field"] == "body"
    assert error["error"]["message"].startswith("the body arrived slower than")


def test_a_long_poll_after_its_body_is_not_cut(served: Served) -> None:
    """The pace is the body's: a request whose body arrived may wait on its connection (a
    long poll listening for the client's disconnect) longer than the grace."""
    project, run = served.run
    conn = socket.create_connection(served.sock.getsockname(), timeout=60)
    conn.sendall(
        f"GET /api/v1/projects/{project}/experiments/{run}/logs?wait=3 HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {served.token}\r\n\r\n".encode()
    )
    status, _, _ = _answer(conn)
    assert status == 200


def test_one_user_cannot_hold_every_upload_thread(served: Served) -> None:
    """A sender just fast enough for the pace may hold an upload thread for as long as its
    declared body takes (64 GiB at 4 KiB/s: months). One user's 16 such uploads held all 16
    threads, and another user's upload waited behind them; a user now holds at most half."""
    held = [served.upload(f"held-{n}.bin", LARGE_BODY_BYTES * 64) for n in range(16)]
    bob = served.store.as_user(served.store.auth.create_user("bob"))
    project = bob.create_project("bobs").id
    run = bob.create_experiment(project, display_name="b").experiment_id
    conn = socket.create_connection(served.sock.getsockname(), timeout=60)
    conn.sendall(
        f"PUT /api/v1/projects/{project}/experiments/{run}/artifacts/small.bin HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {served.store.auth.create_token('bob')}\r\n"
        "Content-Length: 10\r\n\r\n0123456789".encode()
    )
    began = time.monotonic()
    answered = False
    while not answered and time.monotonic() - began < 15:  # main: never, while alice sends
        for each in held:
            each.sendall(b"h" * 200)  # 4,000 B/s each: twice the pace asks
        answered = bool(select.select([conn], [], [], 0.05)[0])
    assert answered, "another user's upload waited behind one user's slow ones"
    status, record, _ = _answer(conn)
    assert status == 201 and record["size"] == 10
    for each in held:
        each.close()
