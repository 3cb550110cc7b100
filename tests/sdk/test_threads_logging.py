"""``exp.log`` from several threads into one experiment: every point stored once, in order,
while drains (and the writer's priority over the logging threads) race the logging."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import mltrail

THREADS = 8
ITERATIONS = 3_000


def _small_batches(exp: Any) -> None:
    # batches of 500 points: dozens of drains cut and pack while the threads log
    exp._writer.batch_points = 500


def _log_from_threads(exp: Any, metrics: Callable[[int, int], dict[str, float]]) -> None:
    """``exp.log(metrics(t, i), iteration=i)`` for ``ITERATIONS`` steps from ``THREADS``
    threads started together, in small batches."""
    _small_batches(exp)
    gate = threading.Barrier(THREADS)

    def log(t: int) -> None:
        gate.wait()
        for i in range(ITERATIONS):
            exp.log(metrics(t, i), iteration=i)

    threads = [threading.Thread(target=log, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_threads_logging_into_one_experiment_store_every_point_once_in_order(settings, store):
    with mltrail.start("threads", settings=settings, store=store) as exp:
        _log_from_threads(
            exp, lambda t, i: {f"t{t}_loss": t + i / ITERATIONS, f"t{t}_acc": float(i)}
        )
        ids = (exp.project_id, exp.experiment_id)
    for t in range(THREADS):
        loss = store.read_series(*ids, f"t{t}_loss", "train")
        acc = store.read_series(*ids, f"t{t}_acc", "train")
        assert loss.iterations.tolist() == list(range(ITERATIONS)), t
        assert loss.values.tolist() == [t + i / ITERATIONS for i in range(ITERATIONS)], t
        assert acc.values.tolist() == [float(i) for i in range(ITERATIONS)], t


def test_threads_logging_the_same_key_lose_nothing_and_keep_each_threads_order(settings, store):
    # every thread logs "loss" (and its own key): the series holds every thread's points,
    # each thread's in the order it logged them
    with mltrail.start("threads-same-key", settings=settings, store=store) as exp:
        _log_from_threads(exp, lambda t, i: {"loss": float(t * ITERATIONS + i), f"t{t}": float(i)})
        ids = (exp.project_id, exp.experiment_id)
    loss = store.read_series(*ids, "loss", "train")
    assert sorted(loss.values.tolist()) == [float(v) for v in range(THREADS * ITERATIONS)]
    for t in range(THREADS):
        mine = [(i, v) for i, v in zip(loss.iterations.tolist(), loss.values.tolist(), strict=True)
                if t * ITERATIONS <= v < (t + 1) * ITERATIONS]  # fmt: skip
        assert mine == [(i, float(t * ITERATIONS + i)) for i in range(ITERATIONS)], t
        assert store.read_series(*ids, f"t{t}", "train").values.tolist() == list(
            map(float, range(ITERATIONS))
        ), t


def test_flush_waits_for_what_other_threads_logged_before_it(settings, store):
    # each thread logs its first half, then waits while the main thread flushes, then logs
    # the rest: the flush returns with every first half stored, whichever thread logged it
    half = ITERATIONS // 2
    with mltrail.start("threads-flush", settings=settings, store=store) as exp:
        _small_batches(exp)
        logged_half = threading.Barrier(THREADS + 1)
        flushed = threading.Event()

        def log(t: int) -> None:
            for i in range(ITERATIONS):
                if i == half:
                    logged_half.wait()
                    flushed.wait()
                exp.log({f"t{t}": float(i)}, iteration=i)

        threads = [threading.Thread(target=log, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        logged_half.wait()
        exp.flush()
        ids = (exp.project_id, exp.experiment_id)
        stored = {t: store.read_series(*ids, f"t{t}", "train") for t in range(THREADS)}
        flushed.set()
        for thread in threads:
            thread.join()
    for t, series in stored.items():
        assert series.values.tolist() == [float(i) for i in range(half)], t
    for t in range(THREADS):
        assert len(store.read_series(*ids, f"t{t}", "train").values) == ITERATIONS, t


class _RecordingLock:
    """The writer's buffer lock, recording whether logging threads were giving way to the
    writer each time a thread asked for it."""

    def __init__(self, lock: Any, priority: Any) -> None:
        self._lock, self._priority, self.asked_while_held = lock, priority, []

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.asked_while_held.append(self._priority.held)
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_drain_waits_for_the_buffer_lock_without_logging_threads_giving_way(settings, store):
    """The buffer lock can be held across a wait for the spool's disk (an overflow past the
    cap): a drain, or a logging thread compacting, waiting for it must not make every other
    logging thread wait meanwhile (a second per exp.log call)."""
    with mltrail.start("drain-lock", settings=settings, store=store) as exp:
        writer = exp._writer
        recording = _RecordingLock(writer._lock, writer._priority)
        writer._lock = recording
        writer.batch_points = writer.max_buffered_points = 40  # past it, this thread compacts
        for i in range(100):
            exp.log({"loss": 1.0, "acc": 0.5}, iteration=i)
        compactions = writer.compactions
        exp.flush()
        writer._lock = recording._lock
    assert compactions > 0
    assert len(recording.asked_while_held) > compactions, "the drain took the buffer lock"
    assert not any(recording.asked_while_held)
