"""Long polls on the event loop: :func:`mltrail.core.polling.poll`'s loop, with each ask in a
worker thread and the waits on the loop, so a waiting client (an agent's claim, a log follower)
holds no worker thread; and the one log follower every server-sent event stream formats."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from mltrail.core.polling import POLL_SECONDS
from mltrail.core.types import LogTail
from mltrail.store.base import Store

FOLLOW_POLL_SECONDS = 0.5
FOLLOW_PAGE = 1000
HEARTBEAT_SECONDS = 15.0

T = TypeVar("T")

# set when the server process is asked to stop (SIGINT, SIGTERM; `mltrail server` sets it):
# long polls and log streams then answer at once with what they have, instead of being cancelled
# by uvicorn's graceful-shutdown timeout, which answers a poll still waiting with a 500; cleared
# by each app's start-up (create_app's lifespan), so a server started after one was stopped in the
# same process waits again
STOPPING = threading.Event()


async def poll_in_threads(
    fetch: Callable[[], T], ready: Callable[[T], bool], wait: float, interval: float = POLL_SECONDS
) -> T:
    """Run ``fetch`` in a worker thread until ``ready`` of its answer or ``wait`` seconds pass;
    returns the last answer."""
    return await _poll(functools.partial(run_in_threadpool, fetch), ready, wait, interval)


async def poll_while_connected(
    request: Request,
    fetch: Callable[[], T | None],
    wait: float,
    undo: Callable[[T], object],
    interval: float = POLL_SECONDS,
) -> T | None:
    """Run ``fetch`` in a worker thread until it answers something other than ``None`` or
    ``wait`` seconds pass, asking only while the request's client is still there; ``None``
    when it left.

    For a poll that acts: a job claim made for a client that has gone (an agent killed during
    its long poll) would take a job that nobody runs until its lease expires, and spend one of
    its retries. The client is checked before each ask, and again after the ask that answered:
    a client that left during that ask's own transaction gets nothing, and ``undo(answer)``
    (in a worker thread) takes the answer's effect back. A client leaving after that check,
    while its answer is being written, is not seen (a job's lease expiry covers it).
    """
    left = False

    async def ask() -> T | None:
        nonlocal left
        left = await request.is_disconnected()
        return None if left else await run_in_threadpool(fetch)

    answer = await _poll(ask, lambda answer: left or answer is not None, wait, interval)
    if answer is not None and await request.is_disconnected():
        await run_in_threadpool(undo, answer)
        return None
    return answer


async def _poll(
    ask: Callable[[], Awaitable[T]], ready: Callable[[T], bool], wait: float, interval: float
) -> T:
    """:func:`mltrail.core.polling.poll`'s loop with awaited asks and waits on the event loop."""
    deadline = time.monotonic() + max(float(wait), 0.0)
    while True:
        answer = await ask()
        remaining = deadline - time.monotonic()
        if ready(answer) or remaining <= 0 or STOPPING.is_set():
            return answer
        await asyncio.sleep(min(interval, remaining))


async def follow_logs(
    request: Request, store: Store, project_id: int, experiment_id: int, after_seq: int
) -> AsyncIterator[LogTail | None]:
    """The experiment's lines as they arrive, read with ``store.tail_logs``, for a stream.

    Yields every tail that has lines, then the tail that is :attr:`LogTail.ended` (last), or
    stops when the client leaves; ``None`` when ``HEARTBEAT_SECONDS`` passed without a line (a
    stream writes a keep-alive then).
    """
    read = functools.partial(store.tail_logs, project_id, experiment_id, limit=FOLLOW_PAGE)
    last_sent = time.monotonic()
    while not STOPPING.is_set() and not await request.is_disconnected():
        tail = await run_in_threadpool(read, after_seq=after_seq)
        if tail.lines or tail.ended:
            yield tail
            if tail.ended:
                return
            after_seq, last_sent = tail.last_seq, time.monotonic()
            continue
        if time.monotonic() - last_sent > HEARTBEAT_SECONDS:
            yield None
            last_sent = time.monotonic()
        await asyncio.sleep(FOLLOW_POLL_SECONDS)
