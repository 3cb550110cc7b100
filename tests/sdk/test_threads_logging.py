"""``exp.log`` from several threads into one experiment: every point stored once, in order,
while drains (and the writer's priority over the logging threads) race the logging."""

from __future__ import annotations

import threading
from typing import Any

import mltrail

THREADS = 8
ITERATIONS = 3_000


def _small_batches(exp: Any) -> None:
    # batches of 500 points: dozens of drains cut and pack while the threads log
    exp._writer.batch_points = 500


def test_threads_logging_into_one_experiment_store_every_point_once_in_order(settings, store):
    with mltrail.start("threads", settings=settings, store=store) as exp:
        _small_batches(exp)
        gate = threading.Barrier(THREADS)

        def log(t: int) -> None:
            gate.wait()
            for i in range(ITERATIONS):
                exp.log({f"t{t}_loss": t + i / ITERATIONS, f"t{t}_acc": float(i)}, iteration=i)

        threads = [threading.Thread(target=log, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ids = (exp.project_id, exp.experiment_id)
    for t in range(THREADS):
        loss = store.read_series(*ids, f"t{t}_loss", "train")
        acc = store.read_series(*ids, f"t{t}_acc", "train")
        assert loss.iterations.tolist() == list(range(ITERATIONS)), t
        assert loss.values.tolist() == [t + i / ITERATIONS for i in range(ITERATIONS)], t
        assert acc.values.tolist() == [float(i) for i in range(ITERATIONS)], t


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
