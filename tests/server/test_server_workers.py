"""``mltrail server --workers N``: several processes on one port, stateless over the database."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil
import pytest

from mltrail.core.types import SeriesQuery
from mltrail.store.http import HttpStore
from support.factories import batch, chunk


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_workers_share_the_port_and_the_data(request, server_factory, backend: str) -> None:
    """Eight clients write and read at once through two workers; every point is stored once,
    each client reads what the others wrote, and SIGTERM ends every process."""
    db_url = request.getfixturevalue(f"migrated_{'sqlite' if backend == 'sqlite' else 'pg'}_url")
    server = server_factory(db_url, extra_args=("--workers", "2"))
    workers = psutil.Process(server.proc.pid).children()
    assert len(workers) == 2 and all(w.is_running() for w in workers)
    with HttpStore(server.url, server.admin_token) as admin:
        project = admin.create_project("workers").id
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            with HttpStore(server.url, server.admin_token) as store:
                exp = store.create_experiment(project, display_name=f"c{index}").experiment_id
                for seq in range(10):
                    part = chunk("loss", range(seq * 50, seq * 50 + 50), np.full(50, index))
                    assert store.append_points(project, exp, batch(seq, part)) == 50
                    store.append_points(project, exp, batch(seq, part))  # a retry: stored once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with HttpStore(server.url, server.admin_token) as store:
        answers = store.read_series_batch(
            [SeriesQuery(project, e) for e in range(1, 9)], max_points=1000
        )
        names = {e.experiment_id: e.display_name for e in store.list_experiments(project).items}
    assert len(answers) == 8
    for a in answers:
        assert a.series is not None and a.series.iterations.tolist() == list(range(500))
        assert set(a.series.values.tolist()) == {float(names[a.experiment_id][1:])}
    server.stop()
    assert server.proc.returncode == 0
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


def test_connections_spread_over_the_workers(server_factory, migrated_sqlite_url) -> None:
    """Keep-alive connections opened one after another go to the worker holding the fewest:
    four to two workers are two each, whichever answered first; once one worker's two close,
    the next two are its (``server/balance.py``)."""
    server = server_factory(migrated_sqlite_url, extra_args=("--workers", "2"))
    workers = psutil.Process(server.proc.pid).children()
    opened = [_keep_alive(server.port) for _ in range(4)]
    holders = _holders(workers, server.port, opened)
    assert sorted(holders.values()) == [2, 2], holders
    first = next(iter(holders))
    leaving = [c for c in opened if _holder(workers, server.port, c) == first]
    for connection in leaving:
        connection.close()
    _wait_until(lambda: all(_holder(workers, server.port, c) is None for c in leaving))
    staying = [c for c in opened if c not in leaving]
    more = [_keep_alive(server.port) for _ in range(2)]
    assert _holders(workers, server.port, more) == {first: 2}
    for connection in staying + more:
        connection.close()


def _keep_alive(port: int) -> http.client.HTTPConnection:
    """A connection that has had one answer (accepted and served) and stays open."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200
    connection.client_port = connection.sock.getsockname()[1]  # type: ignore[attr-defined]
    return connection


def _holder(workers: list[psutil.Process], port: int, connection: Any) -> int | None:
    """The pid of the worker holding the server end of ``connection`` (None once closed)."""
    for worker in workers:
        for c in worker.net_connections(kind="tcp"):
            if c.laddr.port == port and c.raddr and c.raddr.port == connection.client_port:
                return worker.pid
    return None


def _holders(workers: list[psutil.Process], port: int, connections: list[Any]) -> dict[int, int]:
    """How many of ``connections`` each worker pid holds."""
    held = [_holder(workers, port, c) for c in connections]
    return {pid: held.count(pid) for pid in set(held) if pid is not None}


def _wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
