"""The server's transport sends the small writes of one event-loop step (uvicorn's response
head, then its body) as one write, in order, and never holds them past the next loop turn or a
close."""

from __future__ import annotations

import asyncio
from typing import Any

from mltrail.server.http_protocol import COALESCE_BYTES, CoalescingTransport


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
        outer.write(b"x" * COALESCE_BYTES)
        assert inner.writes == [b"head" + b"x" * COALESCE_BYTES]
        outer.write(b"last words")
        outer.close()
        assert inner.closed and inner.writes[-1] == b"last words"
        outer.write(b"after close")  # a late write is dropped, never sent on a closed socket
        await asyncio.sleep(0)
        return inner

    assert len(asyncio.run(run()).writes) == 2


def test_everything_else_is_the_wrapped_transports() -> None:
    async def run() -> RecordingTransport:
        outer, inner = _wrapped()
        assert outer.get_extra_info("peername") == "info:peername"
        outer.write(b"before the switch")
        outer.set_protocol("websocket")  # type: ignore[arg-type]
        assert inner.writes == [b"before the switch"] and inner.protocol == "websocket"
        return inner

    asyncio.run(run())
