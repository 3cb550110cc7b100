"""``server/balance.py``: which of the workers sharing a listening socket accepts a connection.

Listeners in one event loop stand for the workers: each watches its own descriptor of the same
listening socket (as forked workers do), with the counts they would share."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from mltrail.server import balance
from mltrail.server.balance import BalancedListener, ConnectionCounts


class Held(asyncio.Protocol):
    """A connection the server keeps open, tracked as uvicorn's protocol tracks itself."""

    def __init__(self, connections: set[Held]) -> None:
        self.connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)


@pytest.fixture(autouse=True)
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection taken for being left pending, unless a test says otherwise."""
    monkeypatch.setattr(balance, "STALL_SECONDS", 3600.0)


def _start(listening: socket.socket, counts: ConnectionCounts, workers: list[int]) -> list[set]:
    """A listener for each of ``workers`` on the running loop; their sets of open connections."""
    held = []
    for index in workers:
        listener = BalancedListener(listening.dup(), counts, index)
        connections = listener.track(set())
        listener.start(lambda c=connections: Held(c))
        held.append(connections)
    return held


async def _settle(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.001)


def test_each_connection_goes_to_the_worker_holding_fewest() -> None:
    async def connect_one(listening: socket.socket, held: list[set]) -> asyncio.StreamWriter:
        before = [len(h) for h in held]
        writer = (await asyncio.open_connection(*listening.getsockname()))[1]
        await _settle(lambda: sum(map(len, held)) == sum(before) + 1)
        grown = [i for i, h in enumerate(held) if len(h) > before[i]]
        assert before[grown[0]] == min(before), (before, grown)
        return writer

    async def scenario() -> None:
        listening = socket.create_server(("127.0.0.1", 0))
        held = _start(listening, ConnectionCounts(2), [0, 1])
        clients = [await connect_one(listening, held) for _ in range(6)]
        assert [len(h) for h in held] == [3, 3]
        for client in clients[:3]:  # closed by the client: the workers' counts fall
            client.close()
        await _settle(lambda: sum(map(len, held)) == 3)
        clients += [await connect_one(listening, held) for _ in range(3)]
        assert [len(h) for h in held] == [3, 3]
        for client in clients:
            client.close()

    asyncio.run(scenario())


def test_a_worker_that_exited_no_longer_counts() -> None:
    async def scenario() -> None:
        listening = socket.create_server(("127.0.0.1", 0))
        counts = ConnectionCounts(2)
        (only,) = _start(listening, counts, [1])  # worker 0 never accepts
        counts.set_open(1, 5)  # busier than worker 0: it leaves connections to it
        counts.leave(0)
        clients = [(await asyncio.open_connection(*listening.getsockname()))[1] for _ in range(3)]
        await _settle(lambda: len(only) == 3)
        for client in clients:
            client.close()

    asyncio.run(scenario())


def test_connections_left_pending_are_taken_after_one_stall(monkeypatch) -> None:
    """A started worker whose loop is stuck holds the fewest: a pending connection waits for
    it one stall, then the others take it and the ones after it at once (not a stall each),
    until it accepts again."""
    monkeypatch.setattr(balance, "STALL_SECONDS", 0.5)

    async def scenario() -> tuple[float, float]:
        listening = socket.create_server(("127.0.0.1", 0))
        counts = ConnectionCounts(2)
        (only,) = _start(listening, counts, [1])
        # worker 0 (counting 0 open) is stuck, or still starting: never accepts
        counts.set_open(1, 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        clients = [(await asyncio.open_connection(*listening.getsockname()))[1]]
        await _settle(lambda: len(only) == 1)
        first = loop.time() - started
        for _ in range(3):
            clients.append((await asyncio.open_connection(*listening.getsockname()))[1])
        await _settle(lambda: len(only) == 4)
        for client in clients:
            client.close()
        return first, loop.time() - started

    first, burst = asyncio.run(scenario())
    assert first >= 0.5
    assert burst < 1.0  # the three after it: no stall each (that would be 2 s)


def test_a_connection_removed_from_the_set_is_counted_out() -> None:
    """uvicorn's WebSocket protocols leave the set with ``remove``, not ``discard``."""
    counts = ConnectionCounts(2)
    with socket.socket() as unused:
        connections = BalancedListener(unused, counts, 0).track(set())
        connections.add("a")
        assert counts.open(0) == 1
        connections.remove("a")
        assert counts.open(0) == 0
