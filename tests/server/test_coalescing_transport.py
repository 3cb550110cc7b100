"""The server's transport sends the small writes of one event-loop step (uvicorn's response
head, then its body) as one write, in order, and never holds them past the next loop turn or a
close."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from uvicorn.server import ServerState

from mltrail.server.http_protocol import COALESCE_BYTES, CoalescingTransport
from server.test_zero_copy_send import serve


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _wrapped() -> tuple[CoalescingTransport, RecordingTransport]:
    inner = RecordingTransport()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


def test_a_head_and_body_of_one_step_go_out_as_one_write() -> None:
    async def run() -> list[bytes]:
        outer, inner = _wrapped()
        outer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        outer.write(b"{}")
        assert inner.writes == []  # not before the loop's next turn
        await asyncio.sleep(0)
        outer.write(b"next")
        await asyncio.sleep(0)
        return inner.writes

    assert asyncio.run(run()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"next"]


def test_large_writes_and_closes_do_not_wait() -> None:
    async def run() -> RecordingTransport:
        outer, inner = _wrapped()
        outer.write(b"head")
        body = b"x" * COALESCE_BYTES
        outer.write(body)
        # the head first, then the large body itself: never a copy of the two joined
        assert inner.writes == [b"head", body] and inner.writes[1] is body
        outer.write(b"last words")
        outer.close()
        assert inner.closed and inner.writes[-1] == b"last words"
        outer.write(b"after close")  # a late write is dropped, never sent on a closed socket
        await asyncio.sleep(0)
        return inner

    assert len(asyncio.run(run()).writes) == 3


def test_everything_else_is_the_wrapped_transports() -> None:
    async def run() -> RecordingTransport:
        outer, inner = _wrapped()
        assert outer.get_extra_info("peername") == "info:peername"
        outer.write(b"before the switch")
        outer.set_protocol("websocket")  # type: ignore[arg-type]
        assert inner.writes == [b"before the switch"] and inner.protocol == "websocket"
        return inner

    asyncio.run(run())


def test_a_complete_answer_leaves_before_the_app_goes_on() -> None:
    """The protocol sends an answer once it is complete, not at the loop's next turn: the
    client has it while the app still works (the access log's line, a middleware's
    bookkeeping). The app here blocks the loop until the client has its answer."""
    received = threading.Event()
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})
        seen.append(received.wait(timeout=10))  # no later turn of the loop can flush it

    async def check(port: int, _state: ServerState) -> None:
        def client() -> None:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while not data.endswith(b"\r\n\r\n{}"):
                    data += sock.recv(4096)
                received.set()

        thread = threading.Thread(target=client)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)

    asyncio.run(serve(app, check))
    assert seen == [True]
