"""Workloads of issue 17's cliffs, one per subprocess (a fresh interpreter per figure).

Usage: ``python -m bench.cliff_worker WORKLOAD '<json args>'``; prints one JSON object. Each
workload checks what it measured (``problems``: empty when the data read back is right), so its
row can fail on correctness as well as on time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

HASH = "ab" * 20


def iteration_metrics(args: dict[str, Any]) -> dict[str, Any]:
    """``update_metrics_per_iteration`` (the Store's ``put_iteration_metrics``) on a hash linked
    to ``links`` epochs of one run, embedded on a fresh SQLite file: the first write and an
    overwrite, then every link's value checked."""
    from mltrail.store.sql import SqlStore

    n = int(args["links"])
    store = SqlStore.open(f"sqlite:///{args['path']}")
    try:
        p = store.create_project("cliff-iteration-metrics")
        e = store.create_experiment(p.id)
        for epoch in range(n):
            store.link_weights_hash(p.id, e.experiment_id, HASH, iteration=epoch * 100, epoch=epoch)
        seconds = []
        for value in (0.5, 0.9):
            started = time.perf_counter()
            touched = store.put_iteration_metrics(HASH, {"acc": value, "f1": value / 2})
            seconds.append(time.perf_counter() - started)
        got = store.read_iteration_metrics(p.id, e.experiment_id)
    finally:
        store.close()
    problems = []
    if touched != n:
        problems.append(f"{touched} links touched, not {n}")
    acc = sorted((m.epoch, m.value) for m in got if m.key == "ex_acc")
    if acc != [(epoch, 0.9) for epoch in range(n)] or len(got) != 2 * n:
        problems.append(f"{len(got)} values stored, not {2 * n} with ex_acc 0.9 at every epoch")
    return {"links": n, "first_s": seconds[0], "overwrite_s": seconds[1], "problems": problems}


def many_keys(args: dict[str, Any]) -> dict[str, Any]:
    """Ingest of the same number of points as ``few`` and as ``many`` keys through the SDK and
    the server (until committed), then the many-keys experiment's page: every series at
    ``max_points`` one request each, and all of them in one batched request."""
    import mltrail
    from bench.mltrail_worker import _ids, _rows, _store, _timed, stored_problems
    from bench.series_data import key_names, random_walk
    from mltrail.core.types import SeriesQuery

    points, max_points = int(args["points"]), int(args["max_points"])
    out: dict[str, Any] = {"problems": []}
    for label in ("few", "many"):
        keys = int(args[label])
        values = random_walk(keys, points // keys)
        rows = list(_rows(values))
        started = time.perf_counter()
        with mltrail.start(args["project"], display_name=f"keys-{keys}") as exp:
            for i, metrics in rows:
                exp.log(metrics, iteration=i)
            ids = _ids(exp)
        out[f"{label}_s_per_point"] = (time.perf_counter() - started) / values.size
        with _store() as store:
            out["problems"] += [f"{keys} keys: {p}" for p in stored_problems(store, *ids, values)]
    names = key_names(int(args["many"]))
    with _store() as store:
        singles_s, singles = _timed(lambda: [store.read_series(
            *ids, k, "train", max_points=max_points) for k in names], 1)  # fmt: skip
        batch_s, answers = _timed(
            lambda: store.read_series_batch([SeriesQuery(*ids)], max_points=max_points), 3
        )
    got = {a.key: a.series for a in answers}
    for name, single in zip(names, singles, strict=True):
        found = got.get(name)
        if found is None or not np.array_equal(found.values, single.values):
            out["problems"].append(f"batched read of {name} differs from its single read")
    return out | {"keys": len(names), "singles_s": singles_s, "batch_s": batch_s}


def logs_export(args: dict[str, Any]) -> dict[str, Any]:
    """``mltrail experiments logs --no-follow`` of ``lines`` lines from an embedded database
    (a subprocess, as a user runs it; interpreter start included), output to a file, checked
    line by line against what was stored.

    As an installed package is run: with its bytecode compiled (pip compiles it at install),
    by one untimed run on a one-line experiment first; an environment that sets
    PYTHONDONTWRITEBYTECODE (a development shell) would make every timed start compile all
    of mltrail again (~0.06 s CPU)."""
    import os
    import subprocess
    from pathlib import Path

    from mltrail.core.types import LogBatch, LogLine
    from mltrail.store.sql import SqlStore

    n, home = int(args["lines"]), Path(args["home"])
    home.mkdir(parents=True, exist_ok=True)
    store = SqlStore.open(f"sqlite:///{home / 'mltrail.db'}")
    try:
        p = store.create_project("cliff-logs")
        e = store.create_experiment(p.id)
        t0 = 1_764_331_200.0
        for seq, start in enumerate(range(0, n, 10_000)):
            lines = tuple(LogLine(t0 + i / 1000, "stdout", "INFO", _log_text(i))
                          for i in range(start, min(n, start + 10_000)))  # fmt: skip
            store.append_logs(p.id, e.experiment_id, LogBatch("bench", seq, lines))
        warm = store.create_experiment(p.id)
        store.append_logs(p.id, warm.experiment_id, LogBatch("bench", 0, (LogLine(t0, "stdout",
                          "INFO", _log_text(0)),)))  # fmt: skip
    finally:
        store.close()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MLTRAIL_") and k != "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    env["MLTRAIL_HOME"] = str(home)

    def command(experiment: int) -> list[str]:
        return [sys.executable, "-m", "mltrail", "experiments", "logs", "-p", str(p.id), "-e",
                str(experiment), "--no-follow", "--disable-colors"]  # fmt: skip

    subprocess.run(command(warm.experiment_id), env=env, capture_output=True, check=True)
    argv = command(e.experiment_id)
    out_path = home / "logs.txt"
    with open(out_path, "wb") as out:
        started = time.perf_counter()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, env=env, check=False)
        seconds = time.perf_counter() - started
    problems = [] if done.returncode == 0 else [f"exit {done.returncode}: {done.stderr[-500:]!r}"]
    with open(out_path, encoding="utf-8") as printed:
        count = 0
        for count, line in enumerate(printed, start=1):
            if not line.endswith(f" stdout INFO {_log_text(count - 1)}\n"):
                problems.append(f"line {count} differs: {line[:120]!r}")
                break
    if count != n:
        problems.append(f"{count:,} lines printed, not {n:,}")
    out_path.unlink()
    return {"lines": n, "seconds": seconds, "problems": problems}


def threads_log(args: dict[str, Any]) -> dict[str, Any]:
    """``exp.log`` into one experiment from 1 thread and from ``threads`` threads at once
    (each its own keys, the same points in all), to commit, in ``rounds`` alternating rounds
    (1 then ``threads``, then the other way round: a load that drifts meanwhile favours
    neither); each side's best round is its figure, every round's series checked."""
    threads, keys, iterations = int(args["threads"]), int(args["keys"]), int(args["iterations"])
    out: dict[str, Any] = {"problems": [], "threads": threads}
    rounds: dict[str, list[tuple[float, float, float]]] = {"single": [], "threaded": []}
    for r in range(int(args.get("rounds", 1))):
        sides = (("single", 1), ("threaded", threads))
        for label, count in sides if r % 2 == 0 else sides[::-1]:
            rate, log_s, commit_s, problems = _threads_round(args, count, keys, iterations)
            rounds[label].append((rate, log_s, commit_s))
            out["problems"] += [f"{label} round {r + 1} thread {p}" for p in problems]
    for label, figures in rounds.items():
        rate, log_s, commit_s = max(figures)
        # logging, then the wait for the rest to be sent and committed (what the writer had
        # not sent while the threads logged): where a slower side loses
        out[f"{label}_points_per_s"], out[f"{label}_log_s"] = rate, log_s
        out[f"{label}_commit_s"] = commit_s
        out[f"{label}_rounds_points_per_s"] = [f[0] for f in figures]
    return out


def _threads_round(
    args: dict[str, Any], count: int, keys: int, iterations: int
) -> tuple[float, float, float, list[str]]:
    """One round of :func:`threads_log` from ``count`` threads: points per second to commit,
    seconds logging, seconds then to commit, and what the series read back got wrong."""
    import threading

    import mltrail
    from bench.mltrail_worker import _ids, _store, run_at_once
    from bench.series_data import random_walk

    values = [random_walk(keys, iterations // count, seed=t) for t in range(count)]
    rows = [[{f"t{t}_m{k}": v for k, v in enumerate(r)} for r in m.tolist()] for t, m in
            enumerate(values)]  # fmt: skip
    gate = threading.Barrier(count + 1)
    with mltrail.start(args["project"], display_name=f"threads-{count}") as exp:

        def log(t: int) -> None:
            gate.wait()
            for i, metrics in enumerate(rows[t]):
                exp.log(metrics, iteration=i)

        workers = [threading.Thread(target=log, args=(t,)) for t in range(count)]
        started, logged = run_at_once(workers, gate)
        ids = _ids(exp)
    committed = time.perf_counter()
    problems = []
    with _store() as store:
        for t, m in enumerate(values):
            problems += [f"{t}: {p}" for p in _thread_problems(store, ids, m, f"t{t}_m")]
    rate = keys * iterations / (committed - started)
    return rate, logged - started, committed - logged, problems


def _thread_problems(store: Any, ids: tuple[int, int], values: Any, prefix: str) -> list[str]:
    problems = []
    for k in range(values.shape[1]):
        series = store.read_series(*ids, f"{prefix}{k}", "train")
        if not np.array_equal(series.values, values[:, k]):
            problems.append(
                f"{prefix}{k}: {len(series.values)} of {len(values)} points or values differ"
            )
    return problems


def compare_fill(args: dict[str, Any]) -> dict[str, Any]:
    """``experiments`` runs of ``points`` random-walk points of ``loss`` each, in large
    batches straight through HttpStore (the compare view's data, not a timed figure)."""
    from bench.mltrail_worker import _store
    from bench.series_data import random_walk
    from mltrail.core.types import MetricBatch, SeriesChunk

    n = int(args["points"])
    it, epochs = np.arange(n, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    with _store() as store:
        project = store.create_project(f"compare-{time.time_ns()}").id
        for e in range(int(args["experiments"])):
            number = store.create_experiment(project, display_name=f"run-{e}").experiment_id
            values = random_walk(1, n, seed=e)[:, 0]
            for seq, start in enumerate(range(0, n, 100_000)):
                cut = slice(start, start + 100_000)
                part = SeriesChunk("loss", "train", it[cut], epochs[cut], values[cut],
                                   time.time() + it[cut] * 0.01)  # fmt: skip
                store.append_points(project, number, MetricBatch("fill", seq, (part,)))
    return {"project_id": project}


def compare_reads(args: dict[str, Any]) -> dict[str, Any]:
    """A compare view of every run of the project at ``max_points``: one request per run,
    then one batched request (checked equal); then ``clients`` threads, each on its own
    connection, repeating the batched read for ``seconds`` once each has read once: reads per
    second of servers that are warm (what more server workers buy)."""
    import threading

    from bench.mltrail_worker import _store, _timed
    from mltrail.core.types import SeriesQuery

    project, max_points = int(args["project_id"]), int(args["max_points"])
    with _store() as store:
        numbers = [e.experiment_id for e in store.list_experiments(project, limit=1000).items]
        queries = [SeriesQuery(project, e, "loss") for e in numbers]
        singles_s, singles = _timed(lambda: [store.read_series(
            project, e, "loss", "train", max_points=max_points) for e in numbers], 1)  # fmt: skip
        batch_s, answers = _timed(
            lambda: store.read_series_batch(queries, max_points=max_points), 3
        )
    problems = [f"run {e}: batched read differs" for e, a, s in zip(numbers, answers, singles,
                strict=True) if a.series is None or not np.array_equal(a.series.values, s.values)]  # fmt: skip
    done = [0] * int(args["clients"])
    clock: dict[str, float] = {}

    def start_clock() -> None:
        clock["started"] = time.monotonic()
        clock["deadline"] = clock["started"] + float(args["seconds"])

    # each reader connects and reads once before the clock starts: every server process then
    # holds its connections and has served a read (its first imports the API's modules)
    ready = threading.Barrier(len(done) + 1, action=start_clock)

    def client(index: int) -> None:
        with _store() as own:
            try:
                own.read_series_batch(queries, max_points=max_points)
            finally:
                ready.wait()  # broken (and raising) when the clock's action or a wait failed
            while time.monotonic() < clock["deadline"]:
                own.read_series_batch(queries, max_points=max_points)
                done[index] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(done))]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join()
    started = clock["started"]
    return {"runs": len(numbers), "singles_s": singles_s, "batch_s": batch_s,
            "reads_per_s": sum(done) / (time.monotonic() - started), "problems": problems}  # fmt: skip


def _log_text(i: int) -> str:
    return f"epoch {i // 1000} step {i}: loss={1 / (i + 1):.6f} lr=0.001 grad_norm={i % 97 / 7:.3f}"


WORKLOADS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "iteration_metrics": iteration_metrics,
    "many_keys": many_keys,
    "logs_export": logs_export,
    "threads_log": threads_log,
    "compare_fill": compare_fill,
    "compare_reads": compare_reads,
}


def main() -> None:
    """Run the named workload and print its result as the last line of stdout."""
    result = WORKLOADS[sys.argv[1]](json.loads(sys.argv[2]))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
