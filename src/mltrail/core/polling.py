"""The one polling loop: ask again until the answer is ready or the wait is over.

Long polls (a job claim, a log tail) are written once with this, whoever waits: SqlStore in
its thread, the server on its event loop (``server/polling.py`` runs the same loop there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.25


def poll(
    fetch: Callable[[], T],
    ready: Callable[[T], bool],
    wait: float,
    *,
    interval: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fetch`` until ``ready`` of its answer, or until ``wait`` seconds have passed.

    Returns:
        The last answer (ready or not): ``fetch`` runs at least once, also for ``wait <= 0``.
    """
    deadline = clock() + max(float(wait), 0.0)
    while True:
        answer = fetch()
        remaining = deadline - clock()
        if ready(answer) or remaining <= 0:
            return answer
        sleep(min(interval, remaining))
