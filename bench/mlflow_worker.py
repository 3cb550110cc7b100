"""MLflow side of the benchmark, executed by the MLflow virtualenv's Python (never mltrail's).

Usage: ``python mlflow_worker.py WORKLOAD '<json args>'``; prints one JSON object on stdout.
The tracking URI comes in the args (``uri``), so nothing is read from the environment except
what MLflow itself reads (``MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS``, set by the caller).
Kept dependency-free besides MLflow: this file must not import mltrail or the bench package.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

BATCH = 1000  # MLflow's log_batch limit on metrics per request


def _new_run(client: MlflowClient, name: str) -> str:
    experiment_id = client.create_experiment(f"{name}-{time.time_ns()}")
    return client.create_run(experiment_id).info.run_id


def _log_points(client: MlflowClient, run_id: str, keys: int, iterations: int) -> float:
    """Log keys x iterations points with log_batch in chunks of 1,000; returns seconds."""
    now = int(time.time() * 1000)
    pending: list[Metric] = []
    started = time.perf_counter()
    for step in range(iterations):
        for k in range(keys):
            pending.append(Metric(f"m{k}", (step * 7 + k) % 1000 / 997.0, now, step))
            if len(pending) == BATCH:
                client.log_batch(run_id, metrics=pending)
                pending = []
    if pending:
        client.log_batch(run_id, metrics=pending)
    return time.perf_counter() - started


def call_cost(args: dict[str, Any]) -> dict[str, Any]:
    """Median enqueue cost of asynchronous ``log_metric`` and the end-to-end rate."""
    mlflow.set_tracking_uri(args["uri"])
    mlflow.set_experiment(f"call-cost-{time.time_ns()}")
    calls = int(args["calls"])
    costs = []
    with mlflow.start_run():
        started = time.perf_counter()
        for step in range(calls):
            t0 = time.perf_counter_ns()
            mlflow.log_metric("loss", step / 997.0, step=step, synchronous=False)
            costs.append(time.perf_counter_ns() - t0)
        mlflow.flush_async_logging()
        elapsed = time.perf_counter() - started
    return {
        "median_us": statistics.median(costs) / 1000,
        "calls": calls,
        "end_to_end_points_per_s": calls / elapsed,
    }


def ingest(args: dict[str, Any]) -> dict[str, Any]:
    """``log_batch`` throughput for keys x iterations points in chunks of 1,000."""
    client = MlflowClient(args["uri"])
    run_id = _new_run(client, "ingest")
    seconds = _log_points(client, run_id, int(args["keys"]), int(args["iterations"]))
    points = int(args["keys"]) * int(args["iterations"])
    return {
        "points": points,
        "seconds": seconds,
        "points_per_s": points / seconds,
        "run_id": run_id,
    }


def history(args: dict[str, Any]) -> dict[str, Any]:
    """Store one series of ``points`` points, then time ``get_metric_history`` over it
    through the server."""
    direct = MlflowClient(args["db_uri"])  # setup straight into the database: not measured
    run_id = _new_run(direct, "history")
    _log_points(direct, run_id, 1, int(args["points"]))
    client = MlflowClient(args["uri"])
    times = []
    returned = 0
    for _ in range(int(args["repeats"])):
        t0 = time.perf_counter()
        returned = len(client.get_metric_history(run_id, "m0"))
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "returned": returned, "repeats": len(times)}


def runs_list(args: dict[str, Any]) -> dict[str, Any]:
    """Create ``runs`` runs (5 metrics, 5 params) directly in the database, then time
    ``search_runs`` through the server over all of them."""
    direct = MlflowClient(args["db_uri"])
    experiment_id = direct.create_experiment(f"list-{time.time_ns()}")
    now = int(time.time() * 1000)
    for r in range(int(args["runs"])):
        run_id = direct.create_run(experiment_id).info.run_id
        metrics = [Metric(f"metric_{k}", r * 0.5 + k, now, 100) for k in range(5)]
        params = [Param(f"param_{k}", str(r * 10 + k)) for k in range(5)]
        direct.log_batch(run_id, metrics=metrics, params=params)
        direct.set_terminated(run_id)
    client = MlflowClient(args["uri"])
    times = []
    found = 0
    for _ in range(int(args["repeats"])):
        t0 = time.perf_counter()
        found = len(client.search_runs([experiment_id], max_results=int(args["runs"])))
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "found": found, "repeats": len(times)}


WORKLOADS = {"call_cost": call_cost, "ingest": ingest, "history": history, "runs_list": runs_list}


def main() -> None:
    """Run the named workload and print its result as JSON."""
    name, raw = sys.argv[1], sys.argv[2]
    result = WORKLOADS[name](json.loads(raw))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
