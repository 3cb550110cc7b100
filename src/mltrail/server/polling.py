"""Long polls on the event loop: :func:`mltrail.core.polling.poll`'s loop, with each ask in a
worker thread and the waits on the loop, so a waiting client (an agent's claim, a log follower)
holds no worker thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from mltrail.core.polling import POLL_SECONDS

T = TypeVar("T")


async def poll_in_threads(
    fetch: Callable[[], T], ready: Callable[[T], bool], wait: float, interval: float = POLL_SECONDS
) -> T:
    """Run ``fetch`` in a worker thread until ``ready`` of its answer or ``wait`` seconds pass;
    returns the last answer."""
    deadline = time.monotonic() + max(float(wait), 0.0)
    while True:
        answer = await run_in_threadpool(fetch)
        remaining = deadline - time.monotonic()
        if ready(answer) or remaining <= 0:
            return answer
        await asyncio.sleep(min(interval, remaining))
