"""Give the memory that large requests used back to the system once the server is quiet, and
keep the worker threads' allocations in one heap (:func:`use_one_malloc_arena`).

A request that moves a megabyte (a batch of points in, a long series out) allocates several
times its size while it is handled: the body, the decoded columns, the encoded answer, the
transport's buffer. glibc's malloc keeps what is freed in its heaps (and in the arena of each
worker thread) for reuse, and freed blocks between live ones are never handed back: each burst
of such requests ratchets the server's resident memory up (23 to 29 MiB more after the
benchmark's ``exp.log`` workload, 100,000 calls and their series read back), and the next
burst's peak stands on it.

:class:`ReleaseMemoryMiddleware` calls ``malloc_trim(0)``, which returns the free pages of every
arena to the system, once no request has been in flight for :data:`QUIET_SECONDS` after
requests that received or sent :data:`RELEASE_AFTER_BYTES` or more. Not after each of them: a
page handed back is faulted in (and zeroed) again by the next request, and a trim after every
1.6 MB batch raised the server's CPU time for a million points from 0.40 s to 0.48 s. Between
bursts the trim costs nothing the client waits for. It cannot hand back pages that still hold
a live block among free ones, so it recovers part of a burst's growth (4 to 10 MiB after the
``exp.log`` workload), not all of it. Small requests (a synchronous ``log_metric``, a
heartbeat) never lead to one. Where the C library has no ``malloc_trim`` (macOS, musl) the
middleware does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

RELEASE_AFTER_BYTES = 256 * 1024
QUIET_SECONDS = 0.1


_M_ARENA_MAX = -8  # mallopt's parameter number (glibc's malloc.h)


@functools.cache
def _libc_function(name: str) -> Callable[..., int] | None:
    """A function of glibc's malloc taking and returning C ints, or None where the C library
    has none (macOS, musl) or is not found by name (Windows, where ``CDLL(None)`` raises
    TypeError: uncaught, the server would not start and every request would fail)."""
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c") or None), name)
    except (OSError, AttributeError, TypeError):
        return None
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def _malloc_trim() -> Callable[..., int] | None:
    return _libc_function("malloc_trim")


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(ctypes.c_size_t(0))
    return True


def use_one_malloc_arena() -> bool:
    """Make every thread of this process allocate from glibc's main heap (``M_ARENA_MAX`` 1;
    call it before the server's threads start); False where that is not possible.

    glibc gives each thread that allocates while another holds the heap an arena of its own,
    up to eight per core, and what each arena frees stays in it: the worker threads that run
    the synchronous routes kept 5 MiB more at the peak of four runs ingesting at once (101.6 to
    102.6 MiB against 105.9 to 107.6) and of the benchmark's single-run ingest (97.2 against
    98.8 MiB, median of 3), with the same server CPU time. Most allocations happen under the
    GIL, one thread at a time, so the shared heap's lock is rarely contended.
    """
    mallopt = _libc_function("mallopt")
    return mallopt is not None and mallopt(_M_ARENA_MAX, 1) == 1


class ReleaseMemoryMiddleware:
    """Counts the body and answer bytes of HTTP requests; once they add up to ``threshold``
    and no request is in flight for ``quiet`` seconds, :func:`release_free_memory`."""

    def __init__(
        self, app: ASGIApp, threshold: int = RELEASE_AFTER_BYTES, quiet: float = QUIET_SECONDS
    ) -> None:
        self.app = app
        self.threshold = threshold
        self.quiet = quiet
        self.moved = 0  # bytes received and sent since the last release
        self.in_flight = 0
        self._timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _malloc_trim() is None:
            await self.app(scope, receive, send)
            return
        self.in_flight += 1
        if self._timer is not None:  # busy again: release after this burst instead
            self._timer.cancel()
            self._timer = None

        async def counting_receive() -> Message:
            message = await receive()
            self.moved += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            self.moved += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            self.in_flight -= 1
            if not self.in_flight and self.moved >= self.threshold:
                self._timer = asyncio.get_running_loop().call_later(self.quiet, self._release)

    def _release(self) -> None:
        self._timer = None
        if not self.in_flight:
            self.moved = 0
            release_free_memory()
