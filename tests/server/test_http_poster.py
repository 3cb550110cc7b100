"""Point batches through HttpStore's lean poster (one sendall, one recv per request) against a
real server: stored exactly, the connection kept and reopened after the server drops it, the
server's errors raised as they are through httpx."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from mltrail.core.errors import NotFoundError, TransportError
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.server.http_protocol import KEEP_ALIVE_SECONDS
from mltrail.store.http import HttpStore
from mltrail.store.http.poster import lean_target
from support.servers import ServerProcess, free_port, unique_name


def _batch(seq: int, start: int, n: int) -> MetricBatch:
    it = np.arange(start, start + n, dtype=np.int64)
    chunk = SeriesChunk("loss", "train", it, np.full(n, -1, np.int64), it * 0.5, it * 1.0)
    return MetricBatch("poster-test", seq, (chunk,))


@pytest.fixture
def served(shared_server: ServerProcess, http_store_factory) -> tuple[HttpStore, int, int]:
    store = http_store_factory(shared_server.url, shared_server.make_token(unique_name()))
    exp = store.create_experiment(store.create_project(unique_name()).id)
    return store, exp.project_id, exp.experiment_id


def test_batches_go_through_one_kept_connection_and_are_stored_exactly(served):
    store, p, e = served
    poster = store._http._poster
    assert poster is not None  # a plain-http server without a proxy
    assert store.append_points(p, e, _batch(1, 0, 70_000)) == 70_000
    kept = poster._sock
    assert kept is not None
    assert store.append_points(p, e, _batch(2, 70_000, 30_000)) == 30_000
    assert poster._sock is kept
    assert store.append_points(p, e, _batch(2, 70_000, 30_000)) == 0  # a repeat is stored once
    series = store.read_series(p, e, "loss", "train")
    assert series.iterations.tolist() == list(range(100_000))
    assert np.array_equal(series.values, np.arange(100_000) * 0.5)


def test_a_connection_the_server_closed_is_reopened_once(served):
    store, p, e = served
    poster = store._http._poster
    store.append_points(p, e, _batch(1, 0, 10))
    first = poster._sock
    time.sleep(KEEP_ALIVE_SECONDS + 0.5)  # the server closes the idle connection
    assert store.append_points(p, e, _batch(2, 10, 10)) == 10
    assert poster._sock is not None and poster._sock is not first
    assert store.read_series(p, e, "loss", "train").iterations.tolist() == list(range(20))


def test_the_servers_errors_are_raised_as_through_httpx(served):
    store, p, e = served
    with pytest.raises(NotFoundError):
        store.append_points(p, e + 10_000, _batch(1, 0, 10))
    assert store.append_points(p, e, _batch(2, 0, 10)) == 10  # the connection still serves


def test_an_unreachable_server_is_a_transport_error_after_the_retries():
    slept: list[float] = []
    store = HttpStore(f"http://127.0.0.1:{free_port()}", "t", retries=2, sleep=slept.append)
    try:
        with pytest.raises(TransportError, match="cannot reach"):
            store.append_points(1, 1, _batch(1, 0, 10))
        assert len(slept) == 2
    finally:
        store.close()


def test_https_and_proxied_servers_go_through_httpx(monkeypatch):
    assert lean_target("https://example.org") is None
    assert lean_target("http://127.0.0.1:8080") == ("127.0.0.1", 8080)
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "")
    assert lean_target("http://tracker.example.org") is None


def test_closing_the_store_ends_a_request_another_thread_waits_on():
    # a server that accepts and never answers (a listening socket nobody reads): the request
    # waits; closing the store from another thread ends it at once, not at the read timeout
    with socket.create_server(("127.0.0.1", 0)) as silent:
        store = HttpStore(f"http://127.0.0.1:{silent.getsockname()[1]}", "t", retries=0)
        failed: list[BaseException] = []

        def send() -> None:
            try:
                store.append_points(1, 1, _batch(1, 0, 10))
            except BaseException as exc:
                failed.append(exc)

        thread = threading.Thread(target=send)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        store.close()
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - started < 10
        assert len(failed) == 1 and isinstance(failed[0], TransportError)
