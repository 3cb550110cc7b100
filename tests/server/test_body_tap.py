"""A large body read from the socket by the app's thread (the body tap): exactly its bytes, the
next request on the connection parsed as usual, and a body cut short or left unread never taken
for a whole one."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

from starlette.requests import ClientDisconnect

from mltrail.server.body_tap import BodyTap, open_tap
from mltrail.server.http_protocol import LARGE_BODY_BYTES
from mltrail.store.artifacts import CHUNK_BYTES

from .test_zero_copy_send import read_answer, serve

BODY = os.urandom(3 * LARGE_BODY_BYTES + 11)


def drain(tap: BodyTap) -> tuple[str, int]:
    """(sha256, size) of the tap's bytes, read into one reused buffer as a store does."""
    digest, size = hashlib.sha256(), 0
    buffer = bytearray(100_000)
    while got := tap.readinto(buffer):
        digest.update(memoryview(buffer)[:got])
        size += got
    return digest.hexdigest(), size


async def answer(send: Any, text: str) -> None:
    body = text.encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def tapping_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads a large body through the tap (a small one as usual); answers its digest."""
    tap = open_tap(scope)
    if tap is None:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message.get("more_body"):
                break
        await answer(send, f"plain {hashlib.sha256(body).hexdigest()}")
        return
    try:
        digest, size = await asyncio.to_thread(drain, tap)
    except ClientDisconnect:
        await answer(send, "cut short")  # the connection is gone: nobody reads this
        return
    finally:
        tap.stop()
    await answer(send, f"tapped {digest} {size}")


def put(body: bytes, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    return f"PUT /x HTTP/1.1\r\nhost: a\r\ncontent-length: {length}\r\n\r\n".encode() + body


def test_a_tapped_body_is_read_whole_and_the_connection_serves_the_next_request() -> None:
    async def check(port: int, state: Any) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):  # the second large body comes after a fresh parser took over
            writer.write(put(BODY))
            _, got = await read_answer(reader)
            assert got == f"tapped {hashlib.sha256(BODY).hexdigest()} {len(BODY)}".encode()
        writer.write(put(b"small"))
        _, got = await read_answer(reader)
        assert got == f"plain {hashlib.sha256(b'small').hexdigest()}".encode()
        writer.close()

    asyncio.run(serve(tapping_app, check))


def test_a_pipelined_request_after_a_tapped_body_is_not_read_as_body() -> None:
    async def check(port: int, state: Any) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(put(BODY) + put(b"next"))
        _, first = await read_answer(reader)
        _, second = await read_answer(reader)
        assert first == f"tapped {hashlib.sha256(BODY).hexdigest()} {len(BODY)}".encode()
        assert second == f"plain {hashlib.sha256(b'next').hexdigest()}".encode()
        writer.close()

    asyncio.run(serve(tapping_app, check))


def test_a_body_cut_short_raises_in_the_reader_and_closes_the_connection() -> None:
    outcome: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        tap = open_tap(scope)
        assert tap is not None
        try:
            await asyncio.to_thread(drain, tap)
            outcome.append("whole")
        except ClientDisconnect:
            outcome.append("cut short")
        finally:
            tap.stop()

    async def check(port: int, state: Any) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(put(BODY[: len(BODY) // 2], declared=len(BODY)))
        await writer.drain()
        writer.close()
        for _ in range(100):
            if outcome:
                break
            await asyncio.sleep(0.05)

    asyncio.run(serve(app, check))
    assert outcome == ["cut short"]


def test_an_answer_before_the_body_ended_closes_the_connection() -> None:
    """The rest of the body is never parsed as a next request: the connection ends."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        tap = open_tap(scope)
        assert tap is not None
        buffer = bytearray(10)
        await asyncio.to_thread(tap.readinto, buffer)  # a store that gave up early
        tap.stop()
        await answer(send, "refused")

    async def check(port: int, state: Any) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(put(BODY))
        _, got = await read_answer(reader)
        assert got == b"refused"
        try:  # closed with the body unread: an end of stream or a reset, nothing more
            rest = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:
            rest = b""
        assert rest == b""
        writer.close()

    asyncio.run(serve(app, check))


def test_no_tap_once_the_app_received_part_of_the_body() -> None:
    taps: list[BodyTap | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        taps.append(open_tap(scope))
        size = len(message["body"])
        while message.get("more_body"):
            message = await receive()
            size += len(message["body"])
        await answer(send, str(size))

    async def check(port: int, state: Any) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(put(BODY))
        _, got = await read_answer(reader)
        assert got == str(len(BODY)).encode()
        writer.close()

    asyncio.run(serve(app, check))
    assert taps == [None]


def test_a_client_expecting_100_continue_gets_it_when_the_body_is_tapped() -> None:
    """curl sends ``Expect: 100-continue`` before a large PUT body and waits for the interim
    answer (a second) before sending it anyway."""

    async def check(port: int, state: Any) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"PUT /x HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: {len(BODY)}"
        writer.write(head.encode() + b"\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.5)
        assert interim.startswith(b"HTTP/1.1 100 ")
        writer.write(BODY)
        _, got = await read_answer(reader)
        assert got == f"tapped {hashlib.sha256(BODY).hexdigest()} {len(BODY)}".encode()
        writer.close()

    asyncio.run(serve(tapping_app, check))


def test_read_gives_the_same_bytes_in_pieces_of_at_most_a_chunk() -> None:
    """What a store that reads blocks (S3 parts) gets: the body, never a piece over CHUNK_BYTES
    however much it asks for."""
    pieces: list[int] = []

    def read_all(tap: BodyTap) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        while data := tap.read(64 * CHUNK_BYTES):
            pieces.append(len(data))
            digest.update(data)
            size += len(data)
        return digest.hexdigest(), size

    async def app(scope: Any, receive: Any, send: Any) -> None:
        tap = open_tap(scope)
        assert tap is not None
        try:
            digest, size = await asyncio.to_thread(read_all, tap)
        finally:
            tap.stop()
        await answer(send, f"tapped {digest} {size}")

    async def check(port: int, state: Any) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(put(BODY))
        _, got = await read_answer(reader)
        assert got == f"tapped {hashlib.sha256(BODY).hexdigest()} {len(BODY)}".encode()
        writer.close()

    asyncio.run(serve(app, check))
    assert pieces and max(pieces) <= CHUNK_BYTES
