"""mltrail side of the benchmark, one workload per subprocess (a fresh interpreter per figure).

Usage: ``python -m bench.mltrail_worker WORKLOAD '<json args>'``; prints one JSON object. The
server address and token arrive as ``MLTRAIL_URL`` / ``MLTRAIL_TOKEN`` in this process's
environment, which the SDK reads through ``Settings.from_env`` like any training script.
Every workload logs the random walks of :mod:`bench.series_data` and reads back what it logged:
``problems`` lists every difference (a missing point, a changed value), and the parent fails
the row when it is not empty.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import mltrail
from bench.procs import PeakSampler, rss
from bench.series_data import SEED, as_item, key_names, random_walk

CHART_POINTS = 2000
_TICKS = os.sysconf("SC_CLK_TCK")


def _store() -> Any:
    from mltrail.store.http import HttpStore

    return HttpStore(os.environ["MLTRAIL_URL"], os.environ["MLTRAIL_TOKEN"])


def run_at_once(workers: list[threading.Thread], gate: threading.Barrier) -> tuple[float, float]:
    """Start the workers, release them at once (each waits on ``gate`` first), join them:
    the ``perf_counter`` at the release and once all ended."""
    for w in workers:
        w.start()
    gate.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return started, time.perf_counter()


def _ids(exp: Any) -> tuple[int, int]:
    return int(exp.project_id), int(exp.experiment_id)


def stored_problems(store: Any, project: int, experiment: int, values: np.ndarray) -> list[str]:
    """Differences between the stored series and ``values`` (iterations 0..n-1, one column
    per key of :func:`key_names`); empty when every point is stored exactly once."""
    problems = []
    for k, name in enumerate(key_names(values.shape[1])):
        series = store.read_series(project, experiment, name, "train")
        want = values[:, k]
        if len(series.values) != len(want):
            problems.append(f"{name}: {len(series.values):,} of {len(want):,} points stored")
        elif not np.array_equal(series.iterations, np.arange(len(want))):
            problems.append(f"{name}: stored iterations are not 0..{len(want) - 1}")
        elif not np.array_equal(series.values, want):
            problems.append(f"{name}: stored values differ from the values logged")
    return problems


def _problems(ids: tuple[int, int], values: np.ndarray) -> list[str]:
    with _store() as store:
        return stored_problems(store, *ids, values)


def _rows(values: np.ndarray, step: int = 100_000) -> Iterator[tuple[int, dict[str, float]]]:
    """(iteration, {key: value}) per row, converted a slice at a time (bounded memory)."""
    names = key_names(values.shape[1])
    for start in range(0, len(values), step):
        for offset, row in enumerate(values[start : start + step].tolist()):
            yield start + offset, dict(zip(names, row, strict=True))


def _thread_cpu(native_id: int) -> float:
    """User + system CPU seconds of one thread of this process."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _writer_thread() -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name.startswith("mltrail-writer-"))


def _wait_stored(project: int, experiment: int, points: int, timeout: float = 120.0) -> None:
    """Poll until the server holds ``points`` points of the experiment (the writer is idle)."""
    deadline = time.monotonic() + timeout
    with _store() as store:
        while time.monotonic() < deadline:
            if sum(s.count for s in store.list_series(project, experiment)) >= points:
                return
            time.sleep(0.2)


def call_cost(args: dict[str, Any]) -> dict[str, Any]:
    """Median and p99 cost of ``exp.log`` with 4 metrics, each call timed on its own, and the
    CPU time the background writer thread spent per point to send them all."""
    calls = int(args["calls"])
    values = random_walk(4, calls)
    costs = np.empty(calls, dtype=np.int64)
    clock = time.perf_counter_ns
    with mltrail.start(args["project"], display_name="call-cost") as exp:
        writer = _writer_thread()
        for i, metrics in _rows(values):
            t0 = clock()
            exp.log(metrics, iteration=i)
            costs[i] = clock() - t0
        ids = _ids(exp)
        _wait_stored(*ids, 4 * calls)
        writer_cpu = _thread_cpu(writer.native_id or 0)
    return {
        "median_us": float(np.median(costs)) / 1000,
        "p99_us": float(np.percentile(costs, 99)) / 1000,
        "writer_cpu_us_per_point": writer_cpu / (4 * calls) * 1e6,
        "calls": calls,
        "problems": _problems(ids, values),
    }


def ingest(args: dict[str, Any]) -> dict[str, Any]:
    """keys x iterations points per thread, ``threads`` experiments logged at once, from the
    first ``exp.log`` until the end of every run has flushed them all (the server acknowledges
    a batch only after its commit)."""
    keys, iterations = int(args["keys"]), int(args["iterations"])
    threads = int(args.get("threads", 1))
    matrices = [random_walk(keys, iterations, SEED + t) for t in range(threads)]
    ids: list[tuple[int, int]] = [(0, 0)] * threads
    gate = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def one(t: int) -> None:
        try:
            with mltrail.start(args["project"], display_name=f"ingest-{t}") as exp:
                rows = list(_rows(matrices[t]))  # converted before the clock starts
                gate.wait()
                for i, metrics in rows:
                    exp.log(metrics, iteration=i)
                ids[t] = _ids(exp)
        except BaseException as exc:
            errors.append(exc)
            gate.abort()

    started, ended = run_at_once([threading.Thread(target=one, args=(t,)) for t in range(threads)],
                                 gate)  # fmt: skip
    seconds = ended - started
    if errors:
        raise errors[0]
    points = threads * keys * iterations
    problems = [p for t in range(threads) for p in _problems(ids[t], matrices[t])]
    return {"points": points, "seconds": seconds, "points_per_s": points / seconds,
            "problems": problems}  # fmt: skip


def flushes(args: dict[str, Any]) -> dict[str, Any]:
    """keys x iterations points with ``exp.flush()`` every ``per_flush`` iterations: the small
    batches a training loop sends when its writer flushes about once a second (``float32``:
    the values rounded to float32, as PyTorch's ``.item()`` gives them)."""
    keys, iterations, per_flush = int(args["keys"]), int(args["iterations"]), int(args["per_flush"])
    values = random_walk(keys, iterations, int(args.get("seed", SEED)))
    if args.get("float32"):  # values as PyTorch's .item() gives them
        values = as_item(values)
    rows = list(_rows(values))
    with mltrail.start(args["project"], display_name=f"flushes-{keys}x{iterations}") as exp:
        started = time.perf_counter()
        for i, metrics in rows:
            exp.log(metrics, iteration=i)
            if (i + 1) % per_flush == 0:
                exp.flush()
        ids = _ids(exp)
    seconds = time.perf_counter() - started
    return {"points": keys * iterations, "seconds": seconds, "ids": ids,
            "problems": _problems(ids, values)}  # fmt: skip


def series(args: dict[str, Any]) -> dict[str, Any]:
    """Ingest one random-walk series of ``points`` points (flushed every ``per_flush``
    iterations when given, else batched by the SDK), then time chart reads and full exports.

    A chart read passes its checks when it returns between 1 and 2,000 points and keeps the
    series' true minimum and maximum; a full export when it returns every value exactly.
    """
    points, per_flush = int(args["points"]), args.get("per_flush")
    values = random_walk(1, points, int(args.get("seed", SEED)))
    with mltrail.start(args["project"], display_name=f"series-{points}") as exp:
        started = time.perf_counter()
        for i, metrics in _rows(values):
            exp.log(metrics, iteration=i)
            if per_flush and (i + 1) % per_flush == 0:
                exp.flush()
        project, experiment = _ids(exp)
    result: dict[str, Any] = {"points": points, "ingest_s": time.perf_counter() - started,
                              "ids": [project, experiment]}  # fmt: skip
    name, want = key_names(1)[0], values[:, 0]
    with _store() as store:
        chart_s, chart = _timed(
            lambda: store.read_series(project, experiment, name, "train", max_points=CHART_POINTS),
            int(args["repeats"]),
        )
        got = np.asarray(chart.values)
        result.update(chart_s=chart_s, chart_returned=len(got),
                      chart_keeps_min_max=bool(len(got) and np.nanmin(got) == want.min()
                                               and np.nanmax(got) == want.max()))  # fmt: skip
        if args.get("full_repeats"):
            full_s, full = _timed(
                lambda: store.read_series(project, experiment, name, "train"),
                int(args["full_repeats"]),
            )
            result.update(full_s=full_s, full_returned=len(full.values),
                          full_exact=bool(np.array_equal(full.values, want)))  # fmt: skip
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


def chart_rounds(args: dict[str, Any]) -> dict[str, Any]:
    """Chart reads (``max_points`` 2,000) of several stored series, timed round-robin: one
    read of each per round, ``rounds`` rounds after a warm-up read of each, so a change of
    the machine's load hits every series alike. ``series`` lists [label, project, experiment]
    of series logged by :func:`series`; answers each label's median seconds."""
    name = key_names(1)[0]
    entries = [(str(label), int(p), int(e)) for label, p, e in args["series"]]
    seconds: dict[str, list[float]] = {label: [] for label, _, _ in entries}
    with _store() as store:
        for warm_up in [True] + [False] * int(args["rounds"]):
            for label, project, experiment in entries:
                started = time.perf_counter()
                store.read_series(project, experiment, name, "train", max_points=CHART_POINTS)
                if not warm_up:
                    seconds[label].append(time.perf_counter() - started)
    return {"chart_s": {label: statistics.median(s) for label, s in seconds.items()}}


def sync_log(args: dict[str, Any]) -> dict[str, Any]:
    """Latency of ``exp.log`` + ``exp.flush()`` (one point, acknowledged after its commit)."""
    calls = int(args["calls"])
    costs = []
    with mltrail.start(args["project"], display_name="sync-log") as exp:
        for i, metrics in _rows(random_walk(1, calls)):
            t0 = time.perf_counter()
            exp.log(metrics, iteration=i)
            exp.flush()
            costs.append(time.perf_counter() - t0)
    costs.sort()
    return {"median_s": statistics.median(costs), "p99_s": costs[int(0.99 * (calls - 1))]}


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
    values = random_walk(keys, points // keys)
    me = os.getpid()
    with mltrail.start(args["project"], display_name="stalled") as exp:
        exp.log({"warmup": 1.0})
        exp.flush()
        rows = _rows(values, step=1000)  # converted as logged: only the SDK holds points
        baseline = rss(me)
        _say({"ready": True})
        sys.stdin.readline()  # the parent has stopped the server
        with PeakSampler(lambda: rss(me), interval=0.05) as sampler:
            for i, metrics in rows:
                exp.log(metrics, iteration=i)
            time.sleep(float(args.get("settle_s", 3.0)))  # let the writer time out and spool
        _say({"logged": True})
        sys.stdin.readline()  # the parent has resumed the server
    return {"points": points, "baseline": baseline, "peak": sampler.peak,
            "growth": sampler.peak - baseline}  # fmt: skip


def concurrent(args: dict[str, Any]) -> dict[str, Any]:
    """One of N training processes logging at once through the SDK: ``batches`` times
    ``iterations_per_batch`` iterations of ``keys`` metrics, then ``exp.flush()``, each flush
    (the server's acknowledgement of that batch) timed. The parent checks the stored data."""
    keys, per_batch, batches = (
        int(args["keys"]), int(args["iterations_per_batch"]), int(args["batches"]),
    )  # fmt: skip
    values = random_walk(keys, per_batch * batches, SEED + int(args["index"]))
    rows = list(_rows(values))
    with mltrail.start(int(args["project_id"]), display_name=f"proc-{args['index']}") as exp:
        _say({"ready": True})
        sys.stdin.readline()  # every process starts together
        started, latencies = time.time(), []
        for b in range(batches):
            for i, metrics in rows[b * per_batch : (b + 1) * per_batch]:
                exp.log(metrics, iteration=i)
            t0 = time.perf_counter()
            exp.flush()
            latencies.append(time.perf_counter() - t0)
        ended = time.time()
        ids = _ids(exp)
    return {"started": started, "ended": ended, "points": keys * per_batch * batches,
            "latencies": latencies, "experiment_id": ids[1], "index": int(args["index"])}  # fmt: skip


def floor(args: dict[str, Any]) -> dict[str, Any]:
    """The physical floor of ingest (see :mod:`bench.floor`), in SDK-sized batches."""
    from bench.floor import physical_floor
    from mltrail.sdk.writer import BATCH_POINTS

    keys, iterations = int(args["keys"]), int(args["iterations"])
    return physical_floor(Path(args["path"]), keys, iterations, BATCH_POINTS)


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


WORKLOADS = {
    "call_cost": call_cost,
    "ingest": ingest,
    "flushes": flushes,
    "series": series,
    "chart_rounds": chart_rounds,
    "sync_log": sync_log,
    "experiments_list": experiments_list,
    "stalled": stalled,
    "concurrent": concurrent,
    "floor": floor,
}


def main() -> None:
    """Run the named workload and print its result as the last line of stdout."""
    result = WORKLOADS[sys.argv[1]](json.loads(sys.argv[2]))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
