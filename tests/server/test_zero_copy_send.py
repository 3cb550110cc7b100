"""The server's protocol sends a file a response hands it (``http.response.zerocopysend``) with
sendfile: exactly the bytes asked for, framed by the Content-Length, the connection kept alive
for the next request; a client that leaves halfway does not take the server down."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from mltrail.server.http_protocol import ZERO_COPY_SEND, GuardedHttpToolsProtocol

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)
OFFSET, COUNT = 1000, 2 * 1024 * 1024 + 5


def file_app(path: Path) -> Callable[..., Awaitable[None]]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/small":
            headers = [(b"content-length", b"4")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"next"})
            return
        if scope["path"] == "/empty":  # an empty artifact: nothing for sendfile to send
            headers = [(b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            with path.open("rb") as handle:
                await send({"type": ZERO_COPY_SEND, "file": handle, "offset": 0, "count": 0})
            return
        assert ZERO_COPY_SEND in scope["extensions"]
        headers = [(b"content-length", str(COUNT).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with path.open("rb") as handle:
            await send({"type": ZERO_COPY_SEND, "file": handle, "offset": OFFSET, "count": COUNT})

    return app


async def serve(app: Any, check: Callable[[int, ServerState], Awaitable[None]]) -> None:
    config = uvicorn.Config(app, lifespan="off", access_log=False)
    config.load()
    state = ServerState()
    listening = socket.create_server(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: GuardedHttpToolsProtocol(config, state, {}), sock=listening
    )
    try:
        await check(listening.getsockname()[1], state)
    finally:
        for protocol in list(state.connections):
            protocol.transport.close()
        server.close()
        await server.wait_closed()


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


def test_the_file_range_goes_out_and_the_connection_serves_the_next_request(
    tmp_path: Path,
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(PAYLOAD)

    async def check(port: int, state: ServerState) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = await read_answer(reader)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == PAYLOAD[OFFSET : OFFSET + COUNT]
        writer.write(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection
        assert (await read_answer(reader))[1] == b"next"
        writer.close()

    asyncio.run(serve(file_app(path), check))


def test_a_client_leaving_halfway_leaves_the_server_answering(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(PAYLOAD)

    async def check(port: int, state: ServerState) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        while not state.connections:
            await asyncio.sleep(0.01)
        (accepted,) = state.connections  # small buffers: the file cannot fit in them
        accepted.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        sock.sendall(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.2)  # the server is inside sendfile, the socket buffers full
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset, mid-file
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(reader))[1] == b"next"
        writer.close()

    asyncio.run(serve(file_app(path), check))


def test_an_empty_file_is_an_empty_body_on_a_connection_kept_alive(tmp_path: Path) -> None:
    """loop.sendfile refuses a count of 0 (ValueError): an empty artifact's download raised
    into the app after its head, logged as an unhandled error and closing the connection."""
    path = tmp_path / "blob"
    path.write_bytes(b"")

    async def check(port: int, state: ServerState) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = await read_answer(reader)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b""
        writer.write(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection
        assert (await read_answer(reader))[1] == b"next"
        writer.close()

    asyncio.run(serve(file_app(path), check))
