"""A request body of a MiB or more is read from the socket in 1 MiB reads (asyncio's own are
256 KiB), and the next request on the connection is read as usual again."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

from uvicorn.server import ServerState

from mltrail.server.http_protocol import LARGE_BODY_BYTES

from .test_zero_copy_send import serve

BODY = os.urandom(3 * LARGE_BODY_BYTES + 11)


def test_a_large_body_is_read_in_large_reads_then_the_usual_ones() -> None:
    seen: list[tuple[int, int]] = []  # (body bytes, socket read size at the first message)
    state_box: list[ServerState] = []

    def read_size() -> int:
        (protocol,) = state_box[0].connections
        return protocol._socket_transport.max_size  # type: ignore[attr-defined]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        digest, size = hashlib.sha256(), 0
        first_read_size = None
        while True:
            message = await receive()
            first_read_size = first_read_size or read_size()
            digest.update(message["body"])
            size += len(message["body"])
            if not message.get("more_body"):
                break
        seen.append((size, first_read_size))
        answer = digest.hexdigest().encode()
        headers = [(b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def check(port: int, state: ServerState) -> None:
        state_box.append(state)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for body in (BODY, b"small"):
            head = f"PUT /x HTTP/1.1\r\nhost: a\r\ncontent-length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
            await reader.readuntil(b"\r\n\r\n")
            assert await reader.readexactly(64) == hashlib.sha256(body).hexdigest().encode()
        writer.close()

    asyncio.run(serve(app, check))
    default = asyncio.selector_events._SelectorSocketTransport.max_size  # type: ignore[attr-defined]
    assert seen == [(len(BODY), LARGE_BODY_BYTES), (5, default)]
    assert default < LARGE_BODY_BYTES


def test_pieces_arriving_before_the_app_receives_are_gathered_in_order() -> None:
    """The first piece is kept as it is, later ones appended to a copy of it: whichever way a
    body arrives, the app reads exactly its bytes (nothing lost or doubled)."""
    pieces = [os.urandom(size) for size in (10, 70_000, 5, 300_000, 1)]
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.3)  # every piece has arrived by now
        body = b""
        while True:
            message = await receive()
            received.append(message["body"])
            body += message["body"]
            if not message.get("more_body"):
                break
        answer = hashlib.sha256(body).hexdigest().encode()
        headers = [(b"content-length", b"64")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def check(port: int, state: ServerState) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        total = sum(map(len, pieces))
        writer.write(f"PUT /x HTTP/1.1\r\nhost: a\r\ncontent-length: {total}\r\n\r\n".encode())
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        await reader.readuntil(b"\r\n\r\n")
        assert await reader.readexactly(64) == hashlib.sha256(b"".join(pieces)).hexdigest().encode()
        writer.close()

    asyncio.run(serve(app, check))
    assert b"".join(received) == b"".join(pieces)
    assert len(received) <= len(pieces)
