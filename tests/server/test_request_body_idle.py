"""A body received by the event loop (under 1 MiB, or no tap on offer) whose sender stops
sending is cut short after the tap's idle time, as a tapped one is: its upload thread is not
held for ever."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread
import pytest
from starlette.requests import ClientDisconnect

from mltrail.server import body_tap
from mltrail.server.uploads import RequestBody


class _StalledRequest:
    """A request whose body sends one piece and then nothing."""

    async def stream(self) -> Any:
        yield b"first"
        await asyncio.Event().wait()


def test_an_idle_body_is_cut_short(monkeypatch):
    monkeypatch.setattr(body_tap, "IDLE_SECONDS", 0.3)

    def store(body: RequestBody) -> None:
        while body.read():  # the piece waits to make a block: the first read waits
            pass

    async def main() -> None:
        body = RequestBody(_StalledRequest())  # type: ignore[arg-type]
        try:
            with anyio.fail_after(10):
                await anyio.to_thread.run_sync(store, body, abandon_on_cancel=True)
        finally:
            body.stop()

    with pytest.raises(ClientDisconnect):  # not TimeoutError: the read did not wait for ever
        asyncio.run(main())
