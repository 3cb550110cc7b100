"""HttpStore's own retries wait as a 429/503's ``Retry-After`` asks, within the policy's
patience (the sum of its backoff delays), through each of its three senders: httpx, the lean
point poster and the artifacts' direct connection. A real loopback HTTP server plays a
rate-limiting proxy (a real mltrail server cannot be made to answer 429 on cue); the policy's
injectable sleep records the waits instead of taking them."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from mltrail.core.errors import TransportError
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.http import HttpStore
from mltrail.store.http.direct import DirectConnection
from mltrail.store.http.transport import RetryPolicy
from support.loopback import loopback_server

BACKOFF = [0.2, 0.4, 0.8, 1.6, 3.2]  # the default policy's delays; patience 6.2 s
MESSAGES = {429: b"slow down", 503: b"database busy"}
# the proxy plays its script to this test's requests only: its port is a free one, which a
# client of a server another test (or xdist worker) just closed on it may still be retrying
TOKEN = "retry-after-test"


class _Scripted(BaseHTTPRequestHandler):
    """Each request gets the next ``(status, Retry-After)`` of the server's script (a 429 or
    503 in the API's error shape), then ``200 []``."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":  # a stray: not counted
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        script = self.server.script  # type: ignore[attr-defined]
        status, retry_after = script.pop(0) if script else (200, None)
        self.server.answered.append(status)  # type: ignore[attr-defined]
        body = b"[]"
        if status != 200:
            kind = b"transport_error" if status == 503 else b"rate_limited"
            body = b'{"error": {"type": "%s", "field": null, "message": "%s"}}' % (
                kind,
                MESSAGES[status],
            )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class Scripted:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.port = server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.answered: list[int] = server.answered  # type: ignore[attr-defined]

    def play(self, *answers: tuple[int, str | None]) -> None:
        self.server.script[:] = list(answers)  # type: ignore[attr-defined]


@pytest.fixture
def proxy() -> Iterator[Scripted]:
    with loopback_server(_Scripted, script=[], answered=[]) as server:
        yield Scripted(server)


def _store(proxy: Scripted, waits: list[float]) -> HttpStore:
    return HttpStore(proxy.url, TOKEN, sleep=waits.append)


def _batch() -> MetricBatch:
    it = np.arange(10, dtype=np.int64)
    chunk = SeriesChunk("loss", "train", it, np.full(10, -1, np.int64), it * 0.5, it * 1.0)
    return MetricBatch("retry-after-test", 1, (chunk,))


def test_a_429_is_waited_out_as_its_retry_after_asks(proxy):
    """A rate limit used to be raised at once: 429 was no answer HttpStore sent again."""
    waits: list[float] = []
    proxy.play((429, "3"), (429, "3"))
    with _store(proxy, waits) as store:
        assert store.list_projects() == []
    assert waits == [3.0, 3.0] and proxy.answered == [429, 429, 200]


def test_a_wait_past_the_patience_left_gives_the_servers_answer_at_once(proxy):
    """'Retry-After: 3600' on a 503 used to be ignored: five backoff waits, then the error;
    now no wait at all, and the error carries the hour for a caller that can wait it."""
    waits: list[float] = []
    proxy.play(*[(503, "3600")] * 6)
    with _store(proxy, waits) as store, pytest.raises(TransportError, match="database busy") as e:
        store.list_projects()
    assert waits == [] and proxy.answered == [503]
    assert (e.value.answered, e.value.retry_after) == (503, 3600.0)


def test_the_waits_asked_share_one_patience(proxy):
    waits: list[float] = []
    proxy.play((429, "4"), (429, "4"), (429, "4"))
    with _store(proxy, waits) as store, pytest.raises(TransportError, match="slow down") as e:
        store.list_projects()
    assert waits == [4.0] and proxy.answered == [429, 429]  # 4 + 4 > 6.2
    assert e.value.rate_limited and e.value.retry_after == 4.0


@pytest.mark.parametrize("value", ["soon", "\u00b2", "-1", "Thu, 28 May 99999999999 20:26:50 GMT"])
def test_a_bad_retry_after_is_the_backoff_and_never_replaces_the_servers_error(proxy, value):
    waits: list[float] = []
    proxy.play(*[(503, value)] * 6)
    with _store(proxy, waits) as store, pytest.raises(TransportError, match="database busy") as e:
        store.list_projects()
    assert waits == BACKOFF and len(proxy.answered) == 6
    assert (e.value.answered, e.value.retry_after) == (503, None)


def test_point_batches_through_the_lean_poster_wait_as_asked(proxy):
    waits: list[float] = []
    proxy.play(*[(503, "1")] * 6)
    with _store(proxy, waits) as store, pytest.raises(TransportError, match="database busy"):
        assert store._http._poster is not None  # the lean path, not httpx
        store.append_points(1, 1, _batch())
    assert waits == [1.0] * 5 and len(proxy.answered) == 6


def test_the_artifacts_direct_connection_waits_as_asked(proxy):
    waits: list[float] = []
    proxy.play((429, "2"))
    direct = DirectConnection(
        "127.0.0.1",
        proxy.port,
        "/api/v1",
        {"Authorization": f"Bearer {TOKEN}"},
        10.0,
        RetryPolicy(sleep=waits.append),
    )
    conn, response = direct.get("/api/v1/anything")
    try:
        assert response.status == 200 and response.read() == b"[]"
    finally:
        conn.close()
    assert waits == [2.0] and proxy.answered == [429, 200]
