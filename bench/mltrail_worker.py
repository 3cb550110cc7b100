"""mltrail side of the benchmark, one workload per subprocess (a fresh interpreter per figure).

Usage: ``python -m bench.mltrail_worker WORKLOAD '<json args>'``; prints one JSON object. The
server address and token arrive as ``MLTRAIL_URL`` / ``MLTRAIL_TOKEN`` in this process's
environment, which the SDK reads through ``Settings.from_env`` like any training script.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

import mltrail
from bench.procs import PeakSampler, rss

CHART_POINTS = 2000


def _store() -> Any:
    from mltrail.store.http import HttpStore

    return HttpStore(os.environ["MLTRAIL_URL"], os.environ["MLTRAIL_TOKEN"])


def _ids(exp: Any) -> tuple[int, int]:
    return int(exp.project_id), int(exp.experiment_id)


def _stored_points(project: int, experiment: int) -> int:
    with _store() as store:
        return sum(s.count for s in store.list_series(project, experiment))


def call_cost(args: dict[str, Any]) -> dict[str, Any]:
    """Median and p99 cost of ``exp.log`` with 4 metrics, each call timed on its own."""
    calls = int(args["calls"])
    costs = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    with mltrail.start(args["project"], display_name="call-cost") as exp:
        for i in range(calls):
            x = i * 1e-5
            t0 = clock()
            exp.log({"loss": x, "acc": 1 - x, "lr": 0.001, "grad_norm": x * 2})
            costs[i] = clock() - t0
        ids = _ids(exp)
    return {
        "median_us": float(np.median(costs)) / 1000,
        "p99_us": float(np.percentile(costs, 99)) / 1000,
        "calls": calls,
        "stored": _stored_points(*ids),
    }


def ingest(args: dict[str, Any]) -> dict[str, Any]:
    """keys x iterations points from the first ``exp.log`` until the end of the run has
    flushed them all (the server acknowledges a batch only after its commit)."""
    keys, iterations = int(args["keys"]), int(args["iterations"])
    names = [f"metric_{k:02d}" for k in range(keys)]
    with mltrail.start(args["project"], display_name="ingest") as exp:
        started = time.perf_counter()  # starting the run is not ingest: timed from the 1st log
        for i in range(iterations):
            exp.log({name: (i * 7 + k) % 1000 / 997.0 for k, name in enumerate(names)}, iteration=i)
        logged = time.perf_counter()
        ids = _ids(exp)
    ended = time.perf_counter()
    return {
        "points": keys * iterations,
        "seconds": ended - started,
        "log_seconds": logged - started,
        "points_per_s": keys * iterations / (ended - started),
        "stored": _stored_points(*ids),
    }


def series(args: dict[str, Any]) -> dict[str, Any]:
    """Ingest one series of ``points`` points, then time chart reads (and full exports)."""
    points = int(args["points"])
    with mltrail.start(args["project"], display_name=f"series-{points}") as exp:
        started = time.perf_counter()
        for i in range(points):
            exp.log({"loss": 1.0 / (1 + i) + (i % 97) * 1e-4}, iteration=i)
        project, experiment = _ids(exp)
    ingest_s = time.perf_counter() - started
    result: dict[str, Any] = {"points": points, "ingest_s": ingest_s}
    with _store() as store:
        chart = _timed(
            lambda: store.read_series(
                project, experiment, "loss", "train", max_points=CHART_POINTS
            ),
            int(args["repeats"]),
        )
        result.update(
            chart_s=chart[0], chart_returned=len(chart[1].values), total=int(chart[1].total)
        )
        if args.get("full_repeats"):
            full = _timed(
                lambda: store.read_series(project, experiment, "loss", "train"),
                int(args["full_repeats"]),
            )
            result.update(full_s=full[0], full_returned=len(full[1].values))
    return result


def _timed(read: Any, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls (after one warm-up) and the last result."""
    value = read()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = read()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def experiments_list(args: dict[str, Any]) -> dict[str, Any]:
    """Create ``experiments`` experiments (5 hyperparameters, 5 metrics each), then time
    ``as_api().experiments.list`` over the project."""
    from mltrail.core.types import MetricBatch, SeriesChunk

    count = int(args["experiments"])
    with _store() as store:
        project = store.create_project(f"list-{time.time_ns()}").id
        for n in range(count):
            hp = {f"param_{k}": n * 10 + k for k in range(5)}
            exp = store.create_experiment(project, hyperparameters=hp)
            chunks = tuple(
                SeriesChunk(f"metric_{k}", "train", np.array([100]), np.array([-1]),
                            np.array([n * 0.5 + k]), np.array([time.time()]))
                for k in range(5)
            )  # fmt: skip
            store.append_points(project, exp.experiment_id, MetricBatch(f"list-{n}", 1, chunks))
    api = mltrail.as_api(os.environ["MLTRAIL_URL"], os.environ["MLTRAIL_TOKEN"])
    median, listed = _timed(lambda: api.experiments.list(project), int(args["repeats"]))
    api.close()
    return {"median_s": median, "listed": len(listed)}


def stalled(args: dict[str, Any]) -> dict[str, Any]:
    """Log ``points`` points while the server tree is stopped (SIGSTOP by the parent after
    ``ready``), sampling this process's resident memory; the parent resumes the server after."""
    points, keys = int(args["points"]), 20
    names = [f"metric_{k:02d}" for k in range(keys)]
    me = os.getpid()
    with mltrail.start(args["project"], display_name="stalled") as exp:
        exp.log({"warmup": 1.0})
        exp.flush()
        baseline = rss(me)
        sys.stdout.write(json.dumps({"ready": True}) + "\n")
        sys.stdout.flush()
        sys.stdin.readline()  # the parent has stopped the server
        with PeakSampler(lambda: rss(me), interval=0.05) as sampler:
            for i in range(points // keys):
                exp.log({name: i * 1e-3 + k for k, name in enumerate(names)}, iteration=i)
            time.sleep(float(args.get("settle_s", 3.0)))  # let the writer time out and spool
        sys.stdout.write(json.dumps({"logged": True}) + "\n")
        sys.stdout.flush()
        sys.stdin.readline()  # the parent has resumed the server
    return {
        "points": points,
        "baseline": baseline,
        "peak": sampler.peak,
        "growth": sampler.peak - baseline,
    }


def concurrent(args: dict[str, Any]) -> dict[str, Any]:
    """One of N concurrent training processes: SDK-shaped columnar batches sent with the SDK's
    transport (HttpStore.append_points), each batch's acknowledgement timed."""
    from mltrail.core.types import MetricBatch, SeriesChunk

    keys, per_batch, batches = (
        int(args["keys"]),
        int(args["iterations_per_batch"]),
        int(args["batches"]),
    )
    with _store() as store:
        exp = store.create_experiment(int(args["project_id"]))
        sys.stdout.write(json.dumps({"ready": True}) + "\n")
        sys.stdout.flush()
        sys.stdin.readline()  # every process starts together
        started = time.time()
        latencies = []
        for b in range(batches):
            its = np.arange(b * per_batch, (b + 1) * per_batch, dtype=np.int64)
            now = np.full(per_batch, time.time())
            chunks = tuple(
                SeriesChunk(f"metric_{k:02d}", "train", its, np.full(per_batch, -1), its * 1e-3 + k, now)
                for k in range(keys)
            )  # fmt: skip
            t0 = time.perf_counter()
            store.append_points(exp.project_id, exp.experiment_id, MetricBatch("c", b + 1, chunks))
            latencies.append(time.perf_counter() - t0)
    return {
        "started": started,
        "ended": time.time(),
        "points": keys * per_batch * batches,
        "latencies": latencies,
    }


WORKLOADS = {
    "call_cost": call_cost,
    "ingest": ingest,
    "series": series,
    "experiments_list": experiments_list,
    "stalled": stalled,
    "concurrent": concurrent,
}


def main() -> None:
    """Run the named workload and print its result as the last line of stdout."""
    result = WORKLOADS[sys.argv[1]](json.loads(sys.argv[2]))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
