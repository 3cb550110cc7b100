"""A stalled server: the writer's memory stays capped (points go to the spool), and once the
server answers again every point is stored exactly once, in order."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from typing import Any

import pytest

from mltrail.config import Settings
from mltrail.sdk.experiment import start
from mltrail.sdk.opening import HTTP_RETRIES
from mltrail.sdk.spool import Spool, SpoolWarning, target_of
from mltrail.sdk.writer import Writer
from mltrail.store.http import HttpStore

KEYS = [f"m{k}" for k in range(10)]


def _log(writer: Writer, start_it: int, stop_it: int, peak: list[int]) -> None:
    for i in range(start_it, stop_it):
        writer.add_points(
            "train", i, -1, time.time(), {key: i + k / 10 for k, key in enumerate(KEYS)}
        )
        peak[0] = max(peak[0], writer.buffered_points)


def test_stalled_server_spools_past_the_cap_then_stores_everything_once(settings, server):
    server_settings = settings.with_(url=server.url, token=server.admin_token, strict=False)
    store = HttpStore(server.url, server.admin_token, timeout=60, retries=0)
    exp = store.create_experiment(store.create_project("stall").id)
    spool = Spool.from_settings(server_settings)
    writer = Writer(
        store,
        exp.project_id,
        exp.experiment_id,
        spool=spool,
        target=target_of(server_settings),
        batch_points=1000,
        max_buffered_points=2000,
        stall_seconds=0.2,
        flush_interval=60,
    ).start()
    peak = [0]
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpoolWarning)
            _log(writer, 0, 100, peak)  # 1,000 points: the writer sends them and hangs
            time.sleep(0.5)
            _log(writer, 100, 2000, peak)
        assert writer.overflow_batches >= 8, writer.overflow_batches
        assert writer.wait_for_spooler(30)  # the spooler thread writes what training queued
        assert len(spool.files(writer.client_id)) >= 8
        assert peak[0] <= 2000 + len(KEYS), peak[0]
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    writer.close(timeout=60)

    assert spool.files(writer.client_id) == []
    with HttpStore(server.url, server.admin_token) as check:
        for k, key in enumerate(KEYS):
            series = check.read_series(exp.project_id, exp.experiment_id, key, "train")
            assert series.iterations.tolist() == list(range(2000)), key
            assert series.values.tolist() == [i + k / 10 for i in range(2000)], key


def test_a_run_in_server_mode_gives_up_on_requests_sooner_than_httpstore_defaults(
    shared_server,
):
    server = shared_server  # only its address and token: no server of its own to start
    settings = Settings.from_env().with_(url=server.url, token=server.admin_token)
    with start("quick-giveup", settings=settings) as exp:
        assert isinstance(exp.store, HttpStore)
        assert (
            exp.store._http.policy.retries
            == HTTP_RETRIES
            < HttpStore(server.url)._http.policy.retries
        )


def _embedded_writer(settings: Any, store: Any, exp: Any, **options: Any) -> Writer:
    """A started writer flushing every millisecond into ``exp`` of the embedded store."""
    return Writer(store, exp.project_id, exp.experiment_id, spool=Spool.from_settings(settings),
                  target=target_of(settings), flush_interval=0.001, **options).start()  # fmt: skip


@pytest.mark.parametrize("hard_limit", [10**9, None], ids=["in-memory", "over-hard-limit"])
def test_appends_racing_drains_lose_and_double_nothing(settings, store, hard_limit):
    # the logging thread appends without the lock while the writer thread takes records; with
    # the default hard limit the logger outruns SQLite, so overflow to the spool races too
    exp = store.create_experiment(store.create_project("race").id)
    writer = _embedded_writer(settings, store, exp, batch_points=500, hard_limit_points=hard_limit,
                              stall_seconds=60 if hard_limit else 0.5)  # fmt: skip
    for i in range(20_000):
        writer.add_points("train", i, -1, 0.0, {"a": float(i), "b": -float(i)})
    writer.close()
    assert writer.buffered_points == 0
    assert Spool.from_settings(settings).files() == []
    if hard_limit:  # the logger outran SQLite: records were compacted, nothing spooled
        assert writer.spooled_batches == 0 and writer.compactions > 0
    for key, sign in (("a", 1), ("b", -1)):
        series = store.read_series(exp.project_id, exp.experiment_id, key, "train")
        assert series.iterations.tolist() == list(range(20_000)), key
        assert series.values.tolist() == [sign * float(i) for i in range(20_000)], key


def test_threads_logging_at_once_past_the_cap_store_every_point_once(settings, store):
    # several training threads share one writer: past the cap one of them compacts while the
    # others go on logging (they do not wait for it), and every point is counted and stored once
    exp = store.create_experiment(store.create_project("threads").id)
    writer = _embedded_writer(settings, store, exp, batch_points=300, max_buffered_points=600,
                              hard_limit_points=10**9, stall_seconds=60)  # fmt: skip

    def log(t: int) -> None:
        for i in range(3_000):
            writer.add_points("train", i, -1, 0.0, {f"t{t}_a": float(i), f"t{t}_b": float(t)})

    threads = [threading.Thread(target=log, args=(t,)) for t in range(8)]
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave inside add_points, as they may anywhere
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switching)
    writer.close()
    assert writer.logged_points == 8 * 3_000 * 2
    assert writer.buffered_points == 0 and writer.spooled_batches == 0
    for t in range(8):
        series = store.read_series(exp.project_id, exp.experiment_id, f"t{t}_a", "train")
        assert series.iterations.tolist() == list(range(3_000)), t
        assert series.values.tolist() == [float(i) for i in range(3_000)], t


def test_threads_wait_for_a_relief_past_twice_the_cap(settings, store, monkeypatch):
    # the store stalls and the spool's disk is slow: while one thread queues an overflow for
    # the spool (waiting for room), the others may go on logging, but not past twice the cap
    exp = store.create_experiment(store.create_project("slow-disk").id)
    gate = threading.Event()

    class Stalled:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def append_points(self, *args: Any) -> int:
            gate.wait()
            return store.append_points(*args)

    write = Spool.write
    monkeypatch.setattr(Spool, "write", lambda *a, **k: (time.sleep(0.02), write(*a, **k))[1])
    writer = Writer(Stalled(), exp.project_id, exp.experiment_id, spool=Spool.from_settings(settings),
                    target=target_of(settings), batch_points=100, max_buffered_points=400,
                    hard_limit_points=400, stall_seconds=0.01, flush_interval=0.01).start()  # fmt: skip
    peak = [0]

    def log(t: int) -> None:
        for i in range(3_000):
            writer.add_points("train", i, -1, 0.0, {f"t{t}": float(i)})
            peak[0] = max(peak[0], len(writer._calls))  # records not yet relieved

    threads = [threading.Thread(target=log, args=(t,)) for t in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpoolWarning)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        gate.set()
        writer.close(timeout=60)
    assert peak[0] <= 2 * 400 + 3, peak[0]  # a record per thread may land past the check
