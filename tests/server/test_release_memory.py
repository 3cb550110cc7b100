"""The server hands the memory of large requests back once it is quiet: every body and answer
byte is counted, a release follows requests that moved the threshold, small ones never lead to
one, and the app answers the same through the middleware; a serving process can keep
its threads in one malloc arena."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from mltrail.server.memory import ReleaseMemoryMiddleware, release_free_memory

pytestmark = pytest.mark.skipif(
    not release_free_memory(), reason="the C library has no malloc_trim (the middleware is idle)"
)

THRESHOLD = 64 * 1024


async def echo_length(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


async def payload(request: Request) -> Response:
    return Response(b"y" * int(request.query_params["size"]))


def _middleware(quiet: float) -> ReleaseMemoryMiddleware:
    app = Starlette(
        routes=[Route("/echo", echo_length, methods=["POST"]), Route("/payload", payload)]
    )
    return ReleaseMemoryMiddleware(app, threshold=THRESHOLD, quiet=quiet)


def _wait_released(middleware: ReleaseMemoryMiddleware) -> None:
    deadline = time.monotonic() + 10
    while middleware.moved and time.monotonic() < deadline:
        time.sleep(0.02)


def test_small_requests_are_counted_and_never_lead_to_a_release() -> None:
    middleware = _middleware(quiet=0.0)
    with TestClient(middleware) as client:
        for _ in range(5):
            assert client.post("/echo", content=b"x" * 1000).text == "1000"
        time.sleep(0.05)
    assert middleware.moved == 5 * (1000 + len("1000"))  # bodies in, answers out


def test_a_large_body_is_released_once_the_server_is_quiet() -> None:
    middleware = _middleware(quiet=0.01)
    with TestClient(middleware) as client:
        answer = client.post("/echo", content=b"x" * (THRESHOLD + 1))
        assert answer.text == str(THRESHOLD + 1)
        _wait_released(middleware)
        assert middleware.moved == 0
        assert client.post("/echo", content=b"x" * 10).text == "10"
        assert middleware.moved == 10 + len("10")


def test_a_large_answer_counts_as_much_as_a_large_body() -> None:
    middleware = _middleware(quiet=0.01)
    with TestClient(middleware) as client:
        answer = client.get("/payload", params={"size": THRESHOLD})
        assert answer.content == b"y" * THRESHOLD
        _wait_released(middleware)
        assert middleware.moved == 0


def test_release_is_deferred_while_the_server_stays_busy() -> None:
    middleware = _middleware(quiet=3600.0)  # never quiet long enough during the test
    with TestClient(middleware) as client:
        client.post("/echo", content=b"x" * THRESHOLD)
        client.post("/echo", content=b"x" * THRESHOLD)
    assert middleware.moved == 2 * (THRESHOLD + len(str(THRESHOLD)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_reports_that_it_ran_on_linux() -> None:
    assert release_free_memory() is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_serving_process_can_keep_one_malloc_arena() -> None:
    # in a process of its own: the setting is process-wide
    code = "from mltrail.server.memory import use_one_malloc_arena; print(use_one_malloc_arena())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr
