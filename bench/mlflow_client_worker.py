"""MLflow-client workloads against a tracking URI, run by the MLflow virtualenv's Python.

Usage: ``python -P mlflow_client_worker.py WORKLOAD '<json args>'``; prints one JSON object.

Every workload talks to ``args["uri"]`` through the unmodified MLflow client (or, for the chart
endpoint the client has no method for, plain HTTP on the path MLflow's own UI calls), so any
server that speaks MLflow's REST API is measured the same way: MLflow's server, FastTrackML,
and later mltrail's MLflow surface. Setup workloads (``setup_*``) go through the server too but
are not timed. Imports MLflow, numpy and the sibling ``series_data`` only: never mltrail.
"""

from __future__ import annotations

import json
import os
import statistics
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import requests
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

# Run with ``python -P``: this folder goes last on the path, so its modules never shadow
# a library's, and only the sibling below is imported from it.
sys.path.append(str(Path(__file__).resolve().parent))
from series_data import SEED, key_names, random_walk

BATCH = 1000  # MLflow's log_batch limit on metrics per request
BULK_INTERVAL = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
HISTORY = "/api/2.0/mlflow/metrics/get-history"
AIM_SEARCH = "/aim/api/runs/search/metric"  # FastTrackML's own chart endpoint (Aim's UI)


def _client(args: dict[str, Any]) -> MlflowClient:
    return MlflowClient(args["uri"])


def _new_run(client: MlflowClient, name: str) -> tuple[str, str]:
    experiment_id = client.create_experiment(f"{name}-{time.time_ns()}")
    return experiment_id, client.create_run(experiment_id).info.run_id


def _log_matrix(client: MlflowClient, run_id: str, values: np.ndarray, per_request: int) -> None:
    """Log an ``(iterations, keys)`` matrix with log_batch, ``per_request`` metrics a call,
    step-major (every key of a step before the next step), as a training loop produces them."""
    names = key_names(values.shape[1])
    rows = values.tolist()
    pending: list[Metric] = []
    for step, row in enumerate(rows):
        now = int(time.time() * 1000)
        pending.extend(
            Metric(name, value, now, step) for name, value in zip(names, row, strict=True)
        )
        if len(pending) >= per_request:
            client.log_batch(run_id, metrics=pending[:per_request])
            pending = pending[per_request:]
    if pending:
        client.log_batch(run_id, metrics=pending)


def _check_history(
    client: MlflowClient, run_id: str, values: np.ndarray, columns: list[int]
) -> list[str]:
    """Problems found reading back ``columns`` of ``values`` (empty when all is stored)."""
    names = key_names(values.shape[1])
    problems = []
    for k in columns:
        got = sorted(client.get_metric_history(run_id, names[k]), key=lambda m: m.step)
        want = values[:, k]
        if len(got) != len(want):
            problems.append(f"{names[k]}: {len(got)} of {len(want)} points stored")
        elif not np.array_equal(np.array([m.value for m in got]), want):
            problems.append(f"{names[k]}: stored values differ from the values logged")
    return problems


# --- ingest ---------------------------------------------------------------------------------
def ingest(args: dict[str, Any]) -> dict[str, Any]:
    """``runs`` runs logged at once from ``runs`` threads, each keys x iterations points in
    log_batch requests of ``per_request`` metrics; then the first run is read back."""
    client = _client(args)
    keys, iterations, runs = int(args["keys"]), int(args["iterations"]), int(args.get("runs", 1))
    per_request = int(args.get("per_request", BATCH))
    experiment_id = client.create_experiment(f"ingest-{time.time_ns()}")
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(runs)]
    matrices = [random_walk(keys, iterations, SEED + r) for r in range(runs)]
    start = threading.Barrier(runs + 1)

    def one(r: int) -> None:
        start.wait()
        _log_matrix(client, run_ids[r], matrices[r], per_request)

    with ThreadPoolExecutor(runs) as pool:
        futures = [pool.submit(one, r) for r in range(runs)]
        start.wait()
        started, cpu = time.perf_counter(), time.process_time()
        for future in futures:
            future.result()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    points = runs * keys * iterations
    problems = _check_history(client, run_ids[0], matrices[0], sorted({0, keys - 1}))
    # the client's CPU while it logged (all threads), without the setup and the read-back
    return {"points": points, "seconds": seconds, "points_per_s": points / seconds,
            "problems": problems, "client_cpu_s": cpu}  # fmt: skip


def log_metric_sync(args: dict[str, Any]) -> dict[str, Any]:
    """Latency of synchronous ``log_metric`` calls, each timed on its own."""
    client = _client(args)
    _, run_id = _new_run(client, "sync")
    calls = int(args["calls"])
    values = random_walk(1, calls)[:, 0].tolist()
    costs = []
    for step, value in enumerate(values):
        t0 = time.perf_counter()
        client.log_metric(run_id, "loss", value, step=step)
        costs.append(time.perf_counter() - t0)
    costs.sort()
    return {"median_s": statistics.median(costs), "p99_s": costs[int(0.99 * (len(costs) - 1))],
            "calls": calls}  # fmt: skip


def call_cost(args: dict[str, Any]) -> dict[str, Any]:
    """Median enqueue cost of asynchronous ``log_metric`` (fluent API), then a full flush."""
    mlflow.set_tracking_uri(args["uri"])
    mlflow.set_experiment(f"call-cost-{time.time_ns()}")
    calls = int(args["calls"])
    values = random_walk(1, calls)[:, 0].tolist()
    costs = []
    with mlflow.start_run():
        started = time.perf_counter()
        for step, value in enumerate(values):
            t0 = time.perf_counter_ns()
            mlflow.log_metric("loss", value, step=step, synchronous=False)
            costs.append(time.perf_counter_ns() - t0)
        mlflow.flush_async_logging()
        elapsed = time.perf_counter() - started
    return {"median_us": statistics.median(costs) / 1000, "calls": calls,
            "end_to_end_points_per_s": calls / elapsed}  # fmt: skip


# --- storage with realistic flushes ----------------------------------------------------------
def flushes(args: dict[str, Any]) -> dict[str, Any]:
    """keys x iterations points sent ``per_flush`` steps at a time (``keys * per_flush``
    metrics per log_batch), as a training loop flushing about once a second sends them."""
    client = _client(args)
    keys, iterations = int(args["keys"]), int(args["iterations"])
    per_request = keys * int(args["per_flush"])
    _, run_id = _new_run(client, "flushes")
    values = random_walk(keys, iterations)
    started = time.perf_counter()
    _log_matrix(client, run_id, values, per_request)
    seconds = time.perf_counter() - started
    problems = _check_history(client, run_id, values, sorted({0, keys - 1}))
    return {"points": keys * iterations, "seconds": seconds, "requests":
            -(-keys * iterations // per_request), "problems": problems}  # fmt: skip


# --- reads -------------------------------------------------------------------------------------
def setup_runs(args: dict[str, Any]) -> dict[str, Any]:
    """``runs`` finished runs with 5 metrics and 5 params each, created from 4 threads."""
    client = _client(args)
    experiment_id = client.create_experiment(f"list-{time.time_ns()}")
    now = int(time.time() * 1000)

    def one(r: int) -> None:
        run_id = client.create_run(experiment_id).info.run_id
        metrics = [Metric(f"metric_{k}", r * 0.5 + k, now, 100) for k in range(5)]
        params = [Param(f"param_{k}", str(r * 10 + k)) for k in range(5)]
        client.log_batch(run_id, metrics=metrics, params=params)
        client.set_terminated(run_id)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(int(args["runs"]))))
    return {"experiment_id": experiment_id}


def search_runs(args: dict[str, Any]) -> dict[str, Any]:
    """Median time of ``search_runs`` returning every run of the experiment."""
    client, runs = _client(args), int(args["runs"])

    def read() -> int:
        found = client.search_runs([args["experiment_id"]], max_results=runs)
        return sum(1 for r in found if len(r.data.metrics) == 5 and len(r.data.params) == 5)

    median, complete = _timed(read, int(args["repeats"]))
    return {"median_s": median, "found": complete}


def setup_history(args: dict[str, Any]) -> dict[str, Any]:
    """One run holding one series of ``points`` random-walk values (key ``metric_00``)."""
    client = _client(args)
    _, run_id = _new_run(client, "history")
    _log_matrix(client, run_id, random_walk(1, int(args["points"])), BATCH)
    return {"run_id": run_id}


def history(args: dict[str, Any]) -> dict[str, Any]:
    """Median time of ``get_metric_history`` over the whole series, and whether it is exact."""
    client = _client(args)
    median, got = _timed(
        lambda: client.get_metric_history(args["run_id"], "metric_00"), int(args["repeats"])
    )
    want = random_walk(1, int(args["points"]))[:, 0]
    values = np.array([m.value for m in sorted(got, key=lambda m: m.step)])
    exact = len(values) == len(want) and bool(np.array_equal(values, want))
    return {"median_s": median, "returned": len(got), "exact": exact,
            "client_parse_s": _history_parse_seconds(args)}  # fmt: skip


def _history_parse_seconds(args: dict[str, Any]) -> float:
    """The client's own share of get_metric_history: the seconds the MLflow client's own code
    takes on the server's answer (fetched once, untimed), handed to ``call_endpoint`` in place
    of its HTTP call, then one entity per point as ``RestStore`` makes them. That is all the
    client does with an answer: ``verify_rest_response`` reads its JSON once to see it is an
    object, ``call_endpoint`` reads it again into the response protobuf (reading it once, as
    this did before, left out a seventh of the client's work); median of 3."""
    from unittest import mock

    from mlflow.protos.service_pb2 import GetMetricHistory
    from mlflow.utils import rest_utils
    from mlflow.utils.proto_json_utils import message_to_json

    session = requests.Session()
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    params = {"run_id": args["run_id"], "metric_key": "metric_00"}
    answer = session.get(args["uri"] + HISTORY, params=params, timeout=300)  # body read
    request = message_to_json(GetMetricHistory(**params))

    def parse() -> int:
        with mock.patch.object(rest_utils, "http_request", return_value=answer):
            response = rest_utils.call_endpoint(
                None, HISTORY, "GET", request, GetMetricHistory.Response()
            )
        return len([Metric.from_proto(m) for m in response.metrics])

    return _timed(parse, 3)[0]


def bulk_interval(args: dict[str, Any]) -> dict[str, Any]:
    """Median time of the chart endpoint MLflow's UI uses, and whether it keeps the series'
    minimum and maximum; ``implemented`` is false when the server does not answer it."""
    params = {"run_ids": args["run_id"], "metric_key": "metric_00",
              "max_results": int(args["max_points"])}  # fmt: skip
    session = requests.Session()
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")  # what the MLflow client itself sends
    if token:
        session.headers["Authorization"] = f"Bearer {token}"

    def read() -> requests.Response:
        return session.get(args["uri"] + BULK_INTERVAL, params=params, timeout=300)

    probe = read()
    if probe.status_code != 200:
        return {"implemented": False, "status": probe.status_code, "body": probe.text[:200]}
    median, answer = _timed(lambda: read().json(), int(args["repeats"]))
    values = np.array([m["value"] for m in answer.get("metrics", [])])
    want = random_walk(1, int(args["points"]))[:, 0]
    return {"implemented": True, "median_s": median, "returned": len(values),
            "keeps_min_max": bool(len(values) and values.min() == want.min()
                                  and values.max() == want.max())}  # fmt: skip


def aim_chart(args: dict[str, Any]) -> dict[str, Any]:
    """Median time of FastTrackML's chart read (the Aim UI's metric search, ``steps`` points
    per series), the values it returned and whether they keep the series' minimum and maximum."""
    session = requests.Session()
    body = {"metrics": [{"key": "metric_00", "context": {}}], "steps": int(args["max_points"]),
            "query": f'run.hash == "{args["run_id"]}"'}  # fmt: skip

    def read() -> np.ndarray:
        # FastTrackML 0.6.0 honours "steps" only with the query's "p" too (else 50 points)
        answer = session.post(args["uri"] + AIM_SEARCH, params={"p": body["steps"]}, json=body,
                              timeout=300)  # fmt: skip
        answer.raise_for_status()
        return _aim_values(answer.content)

    median, values = _timed(read, int(args["repeats"]))
    want = random_walk(1, int(args["points"]))[:, 0]
    return {"implemented": True, "median_s": median, "returned": len(values),
            "keeps_min_max": bool(len(values) and values.min() == want.min()
                                  and values.max() == want.max())}  # fmt: skip


def _aim_values(stream: bytes) -> np.ndarray:
    """The float64 ``values`` blobs of an Aim streamed tree: a run of (u32 key length, key
    path joined by 0xfe, u32 value length, type byte + value) records."""
    found, at = [], 0
    while at < len(stream):
        (size,) = struct.unpack_from("<I", stream, at)
        path = stream[at + 4 : at + 4 + size].split(b"\xfe")
        at += 4 + size
        (size,) = struct.unpack_from("<I", stream, at)
        value = stream[at + 4 : at + 4 + size]
        at += 4 + size
        if b"values" in path and b"blob" in path:
            found.append(np.frombuffer(value[1:], dtype="<f8"))
    return np.concatenate(found) if found else np.empty(0)


def _timed(read: Any, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls after one warm-up, and the last result."""
    value = read()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = read()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


WORKLOADS = {
    "ingest": ingest, "log_metric_sync": log_metric_sync, "call_cost": call_cost,
    "flushes": flushes, "setup_runs": setup_runs, "search_runs": search_runs,
    "setup_history": setup_history, "history": history, "bulk_interval": bulk_interval,
    "aim_chart": aim_chart,
}  # fmt: skip


def steps(args: dict[str, Any]) -> dict[str, Any]:
    """Several workloads in one interpreter (importing MLflow takes seconds): ``args["steps"]``
    is a list of ``[workload, args]``; a step that fails is reported, the next ones still run.
    Each result has the CPU seconds the step took in the server's processes and in this client
    (all its threads; ``ingest`` reports its timed part's own): the client's share bounds what
    any server could reach."""
    results = []
    server = args.get("server_pids", [])
    for name, step_args in args["steps"]:
        cpu, client_cpu = _cpu_seconds(server), time.process_time()
        try:
            result = {"ok": True, **WORKLOADS[name]({"uri": args["uri"], **step_args})}
        except Exception as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        result.setdefault("client_cpu_s", time.process_time() - client_cpu)
        if server:
            result["server_cpu_s"] = _cpu_seconds(server) - cpu
        results.append(result)
    return {"results": results}


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the server's processes (its workers are live children,
    whose CPU the parent's own counters do not include), whatever the machine's load."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone (a worker the server replaced): not counted
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


WORKLOADS["steps"] = steps


def main() -> None:
    """Run the named workload and print its result as JSON."""
    result = WORKLOADS[sys.argv[1]](json.loads(sys.argv[2]))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
