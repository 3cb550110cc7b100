"""A large request body read straight from its connection's socket by the thread that stores it
(the ASGI extension :data:`BODY_TAP`, offered by :class:`~.http_protocol.GuardedHttpToolsProtocol`).

Through the event loop, every MiB of an artifact upload was received into a new bytes object,
copied again by llhttp's body callback, gathered into blocks and handed to the storing thread
one by one: the event loop's thread alone cost 0.55 s of CPU per GiB uploaded, and the hand-offs
another 0.3 s in the storing thread. With the tap the protocol stops reading the connection, and
the storing thread ``recv_into``s its reusable buffers up to the declared length (the kernel's
copy, nothing else); then the protocol takes the connection back with a fresh parser (the next
request's head comes next), or closes it when the body was not read to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import anyio.from_thread
from starlette.requests import ClientDisconnect

from mltrail.store.artifacts import CHUNK_BYTES

BODY_TAP = "mltrail.body.tap"
"""The scope extension: ``scope["extensions"][BODY_TAP]["open"]()`` (on the event loop) gives a
:class:`BodyTap`, or None when the body cannot be tapped (any more)."""
BODY_ARRIVED = "mltrail.body.arrived"
"""The scope extension: ``scope["extensions"][BODY_ARRIVED]["test"]()`` is True once the
request's whole body was received (the next receive returns it without waiting)."""
IDLE_SECONDS = 300.0  # a tapped body with no byte for this long counts as cut short
T = TypeVar("T")
# a body's sender may keep the server waiting GRACE_SECONDS, plus a second for every
# MIN_BYTES_PER_SECOND bytes it sent: after the grace, an average of at least 4 KiB/s (32 kbit/s,
# a tenth of a poor mobile uplink). One byte every few minutes stayed under IDLE_SECONDS per
# receive and held one of the 16 upload threads for as long as its sender liked.
GRACE_SECONDS = 60.0
MIN_BYTES_PER_SECOND = 4096


class BodyTooSlow(ClientDisconnect):
    """A body whose sender kept the server waiting past its :class:`Pace`: cut (a 408)."""

    def __init__(self, received: int, waited: float) -> None:
        super().__init__()
        self.message = (
            f"the body arrived slower than {MIN_BYTES_PER_SECOND // 1024} KiB/s on average "
            f"after its first {GRACE_SECONDS:.0f} s ({received} bytes in {waited:.0f} s of "
            "waiting for them): cut"
        )

    def __str__(self) -> str:
        return self.message


class Pace:
    """How long a body's sender may yet keep the server waiting for its next bytes: at most
    :data:`IDLE_SECONDS` for one receive, and in all :data:`GRACE_SECONDS` plus a second for
    every :data:`MIN_BYTES_PER_SECOND` bytes received. Only the time spent waiting for the
    sender counts (not the time the server spent storing what came: a slow disk or bucket is
    not the sender's fault)."""

    def __init__(self) -> None:
        self.received = 0
        self.waited = 0.0

    def patience(self) -> float:
        """Seconds the next receive may wait; 0 once the sender is too slow."""
        left = GRACE_SECONDS + self.received / MIN_BYTES_PER_SECOND - self.waited
        return max(min(left, IDLE_SECONDS), 0.0)

    def record(self, received: int, waited: float) -> None:
        self.received += received
        self.waited += waited

    async def within(self, awaitable: Awaitable[T]) -> T:
        """``awaitable``'s result (a receive on the event loop), waited for at most the
        sender's patience; the time waited is recorded, the bytes are the caller's to record.

        Raises:
            TimeoutError: the builtin one on every Python, past the patience (then
                :meth:`cut` says what to raise).
        """
        started = time.monotonic()
        try:  # asyncio.timeout is a timer; wait_for makes a task too (3.6 vs 9.9 us of CPU)
            if sys.version_info >= (3, 11):
                async with asyncio.timeout(self.patience()):
                    return await awaitable
            return await asyncio.wait_for(awaitable, self.patience())
        except (TimeoutError, asyncio.TimeoutError):  # the same class from 3.11 on
            raise TimeoutError from None
        finally:
            self.waited += time.monotonic() - started

    def cut(self) -> ClientDisconnect:
        """What a receive that got nothing (in its patience) raises: :class:`BodyTooSlow`
        once the sender used up its patience, else a plain disconnect."""
        if self.patience() <= 0:
            return BodyTooSlow(self.received, self.waited)
        return ClientDisconnect()


def arrived_test(scope: Mapping[str, Any]) -> Callable[[], bool] | None:
    """The request's :data:`BODY_ARRIVED` test, None when the server offers none."""
    offer = scope.get("extensions", {}).get(BODY_ARRIVED)
    return None if offer is None else offer["test"]  # type: ignore[no-any-return]


class TapOwner(Protocol):
    """What a tap tells its connection's protocol (through the event loop)."""

    loop: Any

    def tap_ended(self, tap: BodyTap, complete: bool) -> None: ...


class BodyTap:
    """The rest of a request body: the bytes the parser received already, then the socket's,
    never past the declared length. Read from one worker thread.

    Args:
        owner: the connection's protocol, told on its loop when the body ends or breaks.
        sock: the connection's socket (duplicated: the tap closes only its own descriptor).
        received: body bytes the parser took already and nobody read yet.
        remaining: body bytes still in the socket.
    """

    def __init__(self, owner: TapOwner, sock: socket.socket, received: bytes, remaining: int):
        self._owner = owner
        self._sock = socket.socket(fileno=os.dup(sock.fileno()))
        self._timeout = IDLE_SECONDS
        self._sock.settimeout(IDLE_SECONDS)
        self._pace = Pace()
        self._received = memoryview(received)
        self.remaining = remaining
        self.broken = False

    def readinto(self, buffer: Any, /) -> int:
        """Fill the start of ``buffer``; 0 at the body's end.

        Raises:
            ClientDisconnect: the connection ended (or went idle) before the declared length.
        """
        view = memoryview(buffer).cast("B")
        if self._received:
            count = min(len(view), len(self._received))
            view[:count] = self._received[:count]
            self._received = self._received[count:]
            return count
        if not self.remaining or not view:
            return 0
        limit = self._limit(len(view))
        started = self._paced()
        try:
            got = self._sock.recv_into(view, limit)
        except OSError:  # a reset, or the sender's patience (Pace) used up
            got = 0
        return self._counted(got, started)

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (at most :data:`CHUNK_BYTES`); ``b""`` at the body's end."""
        size = CHUNK_BYTES if size < 0 else min(size, CHUNK_BYTES)
        if self._received:
            data = bytes(self._received[:size])
            self._received = self._received[len(data) :]
            return data
        if not self.remaining or not size:
            return b""
        limit = self._limit(size)
        started = self._paced()
        try:
            data = self._sock.recv(limit)
        except OSError:
            data = b""
        self._counted(len(data), started)
        return data

    def _limit(self, size: int) -> int:
        """Bytes one receive may take (never past the body); ClientDisconnect once broken."""
        if self.broken:
            raise ClientDisconnect()
        return min(size, self.remaining)

    def _paced(self) -> float:
        """Set the socket's timeout to the sender's patience (a system call only when it is
        shorter than :data:`IDLE_SECONDS`, near the end of it); the clock now."""
        patience = self._pace.patience()
        if patience != self._timeout:
            self._timeout = patience
            self._sock.settimeout(patience or 1e-9)  # 0 would make the socket non-blocking
        return time.monotonic()

    def _counted(self, got: int, started: float) -> int:
        """Count ``got`` bytes received after waiting since ``started``; the socket's end (or
        the sender's patience) before the body's is a disconnect."""
        self._pace.record(got, time.monotonic() - started)
        if not got:
            self.broken = True
            cut = self._pace.cut()
            if not isinstance(cut, BodyTooSlow):  # the connection is gone: close it now;
                # else the sender is there, and its answer (a 408) comes before the close
                self._owner.loop.call_soon_threadsafe(self._owner.tap_ended, self, False)
            raise cut
        self.remaining -= got
        if not self.remaining:
            self._owner.loop.call_soon_threadsafe(self._owner.tap_ended, self, True)
        return got

    def stop(self) -> None:
        """Close the tap's descriptor (the connection stays the protocol's, which closes it
        unless the body was read to its end)."""
        with contextlib.suppress(OSError):
            self._sock.close()


def open_tap(scope: Mapping[str, Any]) -> BodyTap | None:
    """The request's body tap when its server offers one (and nothing was tapped yet)."""
    offer = scope.get("extensions", {}).get(BODY_TAP)
    return offer["open"]() if offer else None


class PendingTap:
    """A request's body tap opened by its first read, from the storing thread (through the
    event loop): the store checks the user's membership and the room left before it reads, so
    a refused upload gets its answer with no ``100 Continue`` before it and none of its body
    read (opening the tap answers the client's ``Expect: 100-continue``).

    Raises (from the reads):
        ClientDisconnect: the tap could not open (the connection is gone), or see
            :meth:`BodyTap.readinto`.
    """

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self._scope = scope
        self._tap: BodyTap | None = None

    @staticmethod
    def offered(scope: Mapping[str, Any]) -> bool:
        """Whether the request's server offers its body as a tap."""
        return BODY_TAP in scope.get("extensions", {})

    def _opened(self) -> BodyTap:
        if self._tap is None:
            self._tap = anyio.from_thread.run_sync(open_tap, self._scope)
            if self._tap is None:
                raise ClientDisconnect()
        return self._tap

    def readinto(self, buffer: Any, /) -> int:
        return self._opened().readinto(buffer)

    def read(self, size: int = -1, /) -> bytes:
        return self._opened().read(size)

    def stop(self) -> None:
        """:meth:`BodyTap.stop` once opened (on the event loop)."""
        if self._tap is not None:
            self._tap.stop()
