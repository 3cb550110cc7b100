"""A log follower behind a proxy: a 502/503/504 the proxy answers while the server restarts
is ridden out like a refused connection (one note, every line once after), while a 500 (a
failing request, not an outage) raises at once instead of being asked again for minutes.

The server is a real ``mltrail server`` process; the proxy a small real HTTP server on
loopback that forwards to it, or answers a fixed status while told to."""

from __future__ import annotations

import http.client
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mltrail.api.logs import RATE_LIMITED_NOTE, UNREACHABLE_NOTE, print_logs
from mltrail.core.errors import TransportError
from mltrail.core.types import Status
from mltrail.store.http import HttpStore
from support.factories import log_batch
from support.servers import ServerProcess, unique_name

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host"}


class Proxy(ThreadingHTTPServer):
    """Forwards every request to ``upstream`` (host, port), or answers ``outage`` (a status
    with an HTML page, as nginx does) while it is set; ``refused`` counts those answers."""

    daemon_threads = True

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream
        self.outage: int | None = None
        self.retry_after: str | None = None  # the Retry-After sent with ``outage``
        self.refused = 0
        self.refused_at: list[float] = []  # time.monotonic() of each
        self.page: str | None = None  # the page answered with ``outage`` (a default when None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    server: Proxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        status = self.server.outage
        if status is not None:
            self.server.refused += 1
            self.server.refused_at.append(time.monotonic())
            page = (
                self.server.page or f"<html><body><h1>{status} Bad Gateway or so</h1></body></html>"
            ).encode()
            headers = {"Content-Type": "text/html"}
            if self.server.retry_after is not None:
                headers["Retry-After"] = self.server.retry_after
            self._answer(status, headers, page)
            return
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        kept = {k: v for k, v in answer.getheaders() if k.lower() not in _HOP_HEADERS}
        self._answer(answer.status, kept, answer.read())
        upstream.close()

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any


@pytest.fixture(scope="module")
def server(
    module_migrated_urls: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One real server for the module (a start costs seconds); each test follows a run of a
    project of its own, through a proxy of its own."""
    home = tmp_path_factory.mktemp("outage-server")
    started = ServerProcess(module_migrated_urls("sqlite"), home).start()
    yield started
    started.close()


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[Proxy]:
    host, port = server.url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    front = Proxy((host, int(port)))
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    yield front
    front.shutdown()
    front.server_close()


def _wait_for(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Follower:
    """``print_logs(follow=True)`` through the proxy in a thread of its own."""

    def __init__(
        self, proxy: Proxy, token: str, ref: tuple[int, int], patience: float = 30.0
    ) -> None:
        self.patience = patience
        self.out, self.err = io.StringIO(), io.StringIO()
        self.raised: BaseException | None = None
        # the store's own retries kept short, so the follower's patience is what rides it out
        self.store = HttpStore(proxy.url, token, backoff=0.01)
        self.thread = threading.Thread(target=self._run, args=ref, daemon=True)
        self.thread.start()

    def _run(self, project: int, experiment: int) -> None:
        try:
            print_logs(
                self.store, project, experiment, self.out, None,
                colours=False, follow=True, err=self.err, retry_seconds=self.patience,
            )  # fmt: skip
        except BaseException as exc:
            self.raised = exc

    def messages(self) -> list[str]:
        return [line.rsplit(" INFO ", 1)[1] for line in self.out.getvalue().splitlines()]

    def join(self) -> None:
        self.thread.join(timeout=90)
        assert not self.thread.is_alive()
        self.store.close()


def _running(server: ServerProcess) -> tuple[HttpStore, tuple[int, int]]:
    store = HttpStore(server.url, server.admin_token)
    project = store.create_project(unique_name("behind-a-proxy")).id
    run = store.create_experiment(project, display_name="live").experiment_id
    store.append_logs(project, run, log_batch("w", 1, "before"))
    return store, (project, run)


def _end_outage(direct: HttpStore, ref: tuple[int, int], proxy: Proxy, follower: Follower) -> None:
    """A last line and the end while the proxy still refuses, then the outage over: the
    follower prints every line once and ends without raising."""
    direct.append_logs(*ref, log_batch("w", 3, "after"))
    direct.update_experiment(*ref, status=Status.DONE)
    proxy.outage = None
    follower.join()
    direct.close()
    assert follower.raised is None
    assert follower.messages() == ["before", "during", "after"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_outage_is_ridden_out(server: ServerProcess, proxy: Proxy, status: int) -> None:
    direct, ref = _running(server)
    follower = Follower(proxy, server.admin_token or "", ref)
    _wait_for(lambda: follower.messages() == ["before"])
    proxy.outage = status
    direct.append_logs(*ref, log_batch("w", 2, "during"))  # ends the long poll under way
    _wait_for(lambda: UNREACHABLE_NOTE in follower.err.getvalue() and proxy.refused >= 8)
    assert follower.thread.is_alive() and follower.raised is None
    _end_outage(direct, ref, proxy, follower)
    assert follower.err.getvalue() == UNREACHABLE_NOTE + "\n"


def test_a_server_error_is_not_asked_again(server: ServerProcess, proxy: Proxy) -> None:
    direct, ref = _running(server)
    direct.close()
    proxy.outage = 500
    follower = Follower(proxy, server.admin_token or "", ref)
    follower.join()
    assert isinstance(follower.raised, TransportError)
    assert "HTTP 500" in str(follower.raised) and follower.raised.answered == 500
    assert proxy.refused == 1 and follower.err.getvalue() == ""


@pytest.mark.parametrize("when", ["seconds", "date"])
def test_a_rate_limit_is_waited_out_as_retry_after_asks(
    server: ServerProcess, proxy: Proxy, when: str
) -> None:
    """A 429 (a proxy's rate limit) used to raise at once, as a plain MltrailError; now the
    follower waits what Retry-After asks (2 s, as seconds or as a date) and goes on."""
    direct, ref = _running(server)
    follower = Follower(proxy, server.admin_token or "", ref)
    _wait_for(lambda: follower.messages() == ["before"])
    proxy.outage = 429
    if when == "seconds":
        proxy.retry_after = "2"
    else:  # an HTTP date 3 s ahead: at least 2 s once whole seconds are cut
        proxy.retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    direct.append_logs(*ref, log_batch("w", 2, "during"))  # ends the long poll under way
    _wait_for(lambda: proxy.refused >= 3)
    assert follower.thread.is_alive() and follower.raised is None
    if when == "seconds":  # a date's wait shrinks as it nears; seconds' stay whole
        gaps = [b - a for a, b in zip(proxy.refused_at, proxy.refused_at[1:], strict=False)]
        assert min(gaps) >= 1.9  # without Retry-After: 0.5 s, then 1 s
    else:
        assert proxy.refused_at[1] - proxy.refused_at[0] >= 1.0  # twice the first backoff
    _end_outage(direct, ref, proxy, follower)
    assert follower.err.getvalue() == RATE_LIMITED_NOTE + "\n"


def test_a_rate_limit_asking_an_hour_still_ends_at_the_followers_patience(
    server: ServerProcess, proxy: Proxy
) -> None:
    """Retry-After is capped: an hour asked does not hold the follower past its patience."""
    direct, ref = _running(server)
    direct.close()
    proxy.outage, proxy.retry_after = 429, "3600"
    follower = Follower(proxy, server.admin_token or "", ref, patience=2.0)
    follower.join()
    assert isinstance(follower.raised, TransportError)
    assert follower.raised.answered == 429 and follower.raised.retry_after == 3600.0
    assert "HTTP 429" in str(follower.raised)
    assert proxy.refused == 2 and follower.err.getvalue() == RATE_LIMITED_NOTE + "\n"


_NGINX_500 = """<html>
<head><title>500 Internal Server Error</title></head>
<body>
<center><h1>500 Internal Server Error</h1></center>
<hr><center>nginx/1.24.0</center>
</body>
</html>
"""


def test_the_cli_says_a_proxys_page_in_one_line(server: ServerProcess, proxy: Proxy) -> None:
    """A proxy's error page (nginx's is seven lines) used to come out as seven lines of
    stderr; an error is one line and a non-zero exit."""
    direct, (project, run) = _running(server)
    direct.close()
    proxy.outage, proxy.page = 500, _NGINX_500
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_URL": proxy.url, "MLTRAIL_TOKEN": server.admin_token or ""}
    env["MLTRAIL_HOME"] = str(server.home / "cli")
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "experiments", "logs", "-p", str(project),
         "-e", str(run)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("Error: server answered HTTP 500: <html> <head><title>500")
