"""Upload bodies, read by the thread that stores them: for ``/api/v1``'s artifact route and the
MLflow artifact proxy alike.

An upload's body is not read by the server's body limit (``routes.is_upload``,
``mlflow.is_upload``): the Store streams it into the blob store from a worker thread, pulling
blocks from the event loop (:class:`RequestBody`) or reading the socket itself
(:mod:`~mltrail.server.body_tap`), so memory stays bounded whatever the size. Apart from the
routes (``routes/artifacts.py``) so that a server only MLflow clients talk to never imports
those, nor the response models they declare (``schemas.py``, 1 MiB resident).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import anyio.from_thread
import anyio.to_thread
from fastapi import Request, Response

from mltrail.core.artifacts import TRAILER_BYTES, Artifact, read_sha256_trailer
from mltrail.server import body_tap
from mltrail.server.body_tap import BodyTooSlow, PendingTap
from mltrail.server.errors import error_response
from mltrail.store.artifacts import CHUNK_BYTES
from mltrail.store.base import Store

# 1 MiB blocks stay in the CPU's caches between being joined, hashed and written: 4 MiB blocks
# made the page-cache write and the sha256 read them from memory (server CPU per GiB uploaded
# 3.2-3.9 s with 4 MiB blocks, 1.8-2.0 s with 1 MiB)
BLOCK_BYTES = CHUNK_BYTES
BLOCKS_AHEAD = 8
# uploads store in worker threads of their own: each holds its thread for as long as its client
# takes to send the body, and slow (or idle) senders must not take every thread the other
# routes run in (WORKER_THREADS in server/app.py)
UPLOAD_THREADS = 16
# a sender just fast enough for its pace (body_tap.Pace) holds its thread for as long as its
# declared body takes (64 GiB at 4 KiB/s: months): one user's uploads take at most half the
# threads, so another user's upload never waits behind them all
UPLOAD_THREADS_PER_USER = UPLOAD_THREADS // 2
_upload_limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)
_user_limiters: weakref.WeakKeyDictionary[Any, dict[object, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary()
)


async def store_upload(store: Store, *args: Any) -> Artifact:
    """``store.put_artifact(*args)`` (reading an upload's body) in a worker thread, at most
    :data:`UPLOAD_THREADS` at a time per event loop and :data:`UPLOAD_THREADS_PER_USER` of
    them for the store's user (a server without users shares all): more uploads wait their
    turn (their bodies unread, no ``100 Continue``) while every other route keeps its
    threads."""
    loop = asyncio.get_running_loop()
    limiter = _upload_limiters.get(loop)
    if limiter is None:
        limiter = _upload_limiters[loop] = anyio.CapacityLimiter(UPLOAD_THREADS)
    user = getattr(store, "user", None)
    if user is None:
        return await anyio.to_thread.run_sync(store.put_artifact, *args, limiter=limiter)
    mine = _user_limiters.setdefault(loop, {})
    own = mine.get(user.id)
    if own is None:
        own = mine[user.id] = anyio.CapacityLimiter(UPLOAD_THREADS_PER_USER)
    try:
        async with own:
            return await anyio.to_thread.run_sync(store.put_artifact, *args, limiter=limiter)
    finally:
        if not own.borrowed_tokens and not own.statistics().tasks_waiting:
            mine.pop(user.id, None)  # no limiter kept for every user that ever uploaded


class RequestBody:
    """A request body read from a worker thread, received ahead by the event loop.

    A task on the event loop receives the body into blocks of :data:`BLOCK_BYTES` and queues
    up to :data:`BLOCKS_AHEAD` of them while the worker thread hashes and stores the previous
    ones, so receiving and storing overlap and memory stays bounded (about 10 MiB). Receiving
    starts at the first read: the store checks membership and the room left first, and a
    refused upload gets no ``100 Continue`` (the first receive sends it).
    """

    def __init__(self, request: Request) -> None:
        self._request = request
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue(BLOCKS_AHEAD)
        self._done = False
        self._task: asyncio.Task[None] | None = None

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._receive())

    async def _receive(self) -> None:
        parts: list[bytes] = []
        held = 0
        chunks = self._request.stream().__aiter__()
        pace = body_tap.Pace()
        try:
            # a body whose sender keeps it waiting past its pace (no byte for IDLE_SECONDS,
            # or slower than the minimum average rate) is cut, as a tapped one is (its sender
            # would hold an upload thread for as long as it liked)
            while True:
                chunk = await pace.within(anext(chunks, None))
                if chunk is None:
                    break
                pace.record(len(chunk), 0.0)
                parts.append(chunk)
                held += len(chunk)
                if held >= BLOCK_BYTES:
                    await self._queue.put(b"".join(parts))
                    parts, held = [], 0
            if parts:
                await self._queue.put(b"".join(parts))
            await self._queue.put(b"")
        except TimeoutError:
            await self._queue.put(pace.cut())
        except Exception as exc:  # a client that went away: the reader raises it
            await self._queue.put(exc)

    def read(self, size: int = -1, /) -> bytes:
        if self._done:
            return b""
        if self._task is None:
            anyio.from_thread.run_sync(self._start)
        item = anyio.from_thread.run(self._queue.get)
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._done = not item
        return item

    def stop(self) -> None:
        """Stop receiving (the store finished or gave up early)."""
        if self._task is not None:
            self._task.cancel()


class TrailedBody:
    """An upload body that ends with its sender's sha256 (``sha256=trailer``): :meth:`read`
    gives the ``size`` bytes before the trailer, :meth:`sent_sha256` the digest after them
    (a :class:`~mltrail.store.artifacts.DigestedSource`, checked before anything is recorded).
    """

    def __init__(self, body: RequestBody | PendingTap, size: int) -> None:
        self._body = body
        self._left = size
        self._rest = b""
        self._trailer: bytes | None = None

    def read(self, size: int = -1, /) -> bytes:
        if self._left == 0:
            return b""
        block, self._rest = self._rest or self._body.read(), b""
        if len(block) > self._left:
            block, self._rest = block[: self._left], block[self._left :]
        self._left -= len(block)
        return block

    def sent_sha256(self) -> str | None:
        if self._trailer is None:  # asked again (a blob store checks twice): read once
            tail, self._rest = self._rest, b""
            while len(tail) <= TRAILER_BYTES and (more := self._body.read()):
                tail += more
            self._trailer = tail
        return read_sha256_trailer(self._trailer)


class TrailedTap(TrailedBody):
    """A trailed body read from the socket (:mod:`~mltrail.server.body_tap`): :meth:`readinto`
    fills the caller's buffer with the bytes before the trailer."""

    def __init__(self, body: PendingTap, size: int) -> None:
        super().__init__(body, size)
        self._tap = body

    def readinto(self, buffer: Any, /) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        got = self._tap.readinto(view) if view else 0
        self._left -= got
        return got


def too_slow(exc: BodyTooSlow) -> Response:
    """The answer to an upload cut for its pace: a 408 naming the body, closing the
    connection (the rest of the body is never read)."""
    answer = error_response(408, "validation_error", exc.message, "body")
    answer.headers["Connection"] = "close"
    return answer


def upload_body(request: Request) -> RequestBody | PendingTap:
    """The body to store: read from the socket by the storing thread where the server offers
    that (:mod:`~mltrail.server.body_tap`), else received by the event loop; either from its
    first read on."""
    if PendingTap.offered(request.scope):
        return PendingTap(request.scope)
    return RequestBody(request)
