"""The server's protocol tells the app whether a request's whole body has arrived
(``mltrail.body.arrived``): true for a small body sent with its head, false while the rest is
still to come; the body limit then receives an arrived body without setting its pace's timer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mltrail.server import body_tap
from mltrail.server.body_tap import BODY_ARRIVED
from mltrail.server.errors import BodyLimitMiddleware
from server.test_zero_copy_send import read_answer, serve


def recording_app(seen: list[tuple[bool, bytes]], asked: asyncio.Event) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        arrived = scope["extensions"][BODY_ARRIVED]["test"]()
        asked.set()
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        seen.append((arrived, body))
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _post(body_length: int) -> bytes:
    return f"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: {body_length}\r\n\r\n".encode()


def test_the_protocol_says_whether_the_body_has_arrived() -> None:
    seen: list[tuple[bool, bytes]] = []

    async def check(port: int, _state: Any) -> None:
        asked = asyncio.Event()
        app.append(recording_app(seen, asked))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_post(5) + b"whole")  # head and body in one write
        assert (await read_answer(reader))[1] == b"ok"
        asked.clear()
        writer.write(_post(10) + b"half")  # the rest comes once the app has asked
        await asyncio.wait_for(asked.wait(), 30)
        writer.write(b"-rest!")
        assert (await read_answer(reader))[1] == b"ok"
        writer.close()

    app: list[Any] = []

    async def later_app(scope: Any, receive: Any, send: Any) -> None:
        await app[0](scope, receive, send)

    asyncio.run(serve(later_app, check))
    assert seen == [(True, b"whole"), (False, b"half-rest!")]


@pytest.mark.parametrize("arrived", [True, False])
def test_the_body_limit_paces_only_a_body_still_to_come(arrived: bool, monkeypatch) -> None:
    timed: list[int] = []
    real = body_tap.Pace.within

    def counting(self: body_tap.Pace, awaitable: Any) -> Any:
        timed.append(1)
        return real(self, awaitable)

    monkeypatch.setattr(body_tap.Pace, "within", counting)
    got: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Any) -> None:
        raise AssertionError("nothing is answered")

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": [],
             "extensions": {BODY_ARRIVED: {"test": lambda: arrived}}}  # fmt: skip
    asyncio.run(BodyLimitMiddleware(inner, max_bytes=100)(scope, receive, send))
    assert got == [{"type": "http.request", "body": b"{}", "more_body": False}]
    assert timed == ([] if arrived else [1])
