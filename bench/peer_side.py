"""A peer measured in every configuration it is tried in, keeping the best figure per workload.

The data the reads need (1,000 runs for search, one long series for history and chart reads)
and the storage figures are made once, through the peer's server in its first configuration;
then each configuration starts a server on the same database file and runs the timed workloads:
ingest (single run, peak memory sampled; then 4 runs from 4 threads), sync ``log_metric``,
``search_runs``, ``get_metric_history`` and the chart endpoints. For each workload the fastest
configuration wins (the smallest memory for memory), and which one won is reported.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.disk import used_sqlite_bytes
from bench.peers import CLIENT, Config, Peer
from bench.sizes import Sizes

WORKER = Path(__file__).resolve().parent / "mlflow_client_worker.py"
HIGHER_IS_BETTER = {"ingest", "ingest_threads"}


@dataclass
class Best:
    """The best value seen for one workload, the configuration that gave it, and its result."""

    value: float
    config: str
    result: dict[str, Any]


@dataclass
class PeerFigures:
    """What one peer measured: the best value per workload and the one-off figures."""

    peer: Peer
    best: dict[str, Best] = field(default_factory=dict)
    once: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    tried: list[str] = field(default_factory=list)
    timings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def offer(self, workload: str, value: float, config: Config, result: dict[str, Any]) -> None:
        """Keep ``value`` when it beats the best so far for ``workload``."""
        best = self.best.get(workload)
        higher = workload in HIGHER_IS_BETTER
        if best is None or (value > best.value if higher else value < best.value):
            self.best[workload] = Best(value, config.label, result)

    def value(self, workload: str) -> float | None:
        best = self.best.get(workload)
        return None if best is None else best.value


def measure(peer: Peer, workdir: Path, sizes: Sizes) -> PeerFigures:
    """Set up the peer's data once (on the first server that starts), then run the timed
    workloads in every configuration."""
    peer.ensure_installed()
    figures = PeerFigures(peer)
    db = workdir / f"{peer.name}.db"
    setup: dict[str, str] | None = None
    for config in peer.configs:
        began = time.monotonic()
        try:
            server = peer.start(config, db, workdir)
        except Exception as exc:
            figures.tried.append(f"{config.label} (did not start)")
            figures.notes.append(f"{peer.title}, {config.label}: did not start: {exc}"[:600])
            continue
        up = time.monotonic() - began
        try:
            if setup is None:
                setup = _setup(peer, server, db, sizes, figures)
            _timed_workloads(peer, config, server, db, sizes, setup, figures)
        finally:
            server.stop()
        figures.tried.append(config.label)
        figures.timings.append(f"{config.label}: up in {up:.0f} s, "
                               f"{time.monotonic() - began:.0f} s in all")  # fmt: skip
    figures.once["journal_mode"] = _journal_mode(db)
    return figures


def _setup(
    peer: Peer, server: procs.Server, db: Path, sizes: Sizes, figures: PeerFigures
) -> dict[str, str]:
    """The untimed data, the async call cost and the storage figure (realistic flushes)."""
    made = run_steps(server, peer, [
        ("setup_runs", {"runs": sizes.list_experiments}),
        ("setup_history", {"points": sizes.history_points}),
        ("call_cost", {"calls": sizes.peer_call_calls}),
    ])  # fmt: skip
    for name, result in zip(("setup_runs", "setup_history"), made, strict=False):
        if not result["ok"]:
            raise RuntimeError(f"{peer.title}: {name} failed: {result['error']}")
    if made[2]["ok"]:
        figures.once["call_cost"] = made[2]
    before = used_sqlite_bytes(db)
    (flush,) = run_steps(server, peer, [("flushes", {
        "keys": sizes.ingest_keys, "iterations": sizes.peer_flush_iterations,
        "per_flush": sizes.flush_iterations})])  # fmt: skip
    if flush["ok"]:
        flush["bytes_per_point"] = (used_sqlite_bytes(db) - before) / flush["points"]
        figures.once["flushes"] = flush
        _record_problems(figures, "flushes", flush)
    else:
        figures.notes.append(f"{peer.title}: realistic flushes failed: {flush['error']}")
    return {"experiment_id": made[0]["experiment_id"], "run_id": made[1]["run_id"]}


def _timed_workloads(
    peer: Peer, config: Config, server: procs.Server, db: Path, sizes: Sizes,
    setup: dict[str, str], figures: PeerFigures,
) -> None:  # fmt: skip
    keys = sizes.ingest_keys
    before = used_sqlite_bytes(db)
    with procs.PeakSampler(server.tree_rss) as memory:
        (single,) = run_steps(server, peer, [("ingest", {
            "keys": keys, "iterations": sizes.peer_ingest_iterations})])  # fmt: skip
    if single["ok"]:
        figures.offer("ingest", single["points_per_s"], config, single)
        figures.offer("server_rss", memory.peak, config, {"peak": memory.peak})
        figures.once.setdefault("ingest_bytes_per_point",
                                (used_sqlite_bytes(db) - before) / single["points"])  # fmt: skip
        _record_problems(figures, "ingest", single)
    chart = {"run_id": setup["run_id"], "points": sizes.history_points, "max_points": 2000,
             "repeats": sizes.peer_chart_repeats}  # fmt: skip
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("ingest_threads", "ingest",
         {"keys": keys, "iterations": sizes.peer_ingest_iterations // 4, "runs": 4}),
        ("log_metric_sync", "log_metric_sync", {"calls": sizes.peer_sync_calls}),
        ("search_runs", "search_runs", {"experiment_id": setup["experiment_id"],
                                        "runs": sizes.list_experiments,
                                        "repeats": sizes.peer_list_repeats}),
        ("history", "history", {"run_id": setup["run_id"], "points": sizes.history_points,
                                "repeats": sizes.peer_history_repeats}),
        *((name, name, chart) for name in peer.chart_reads),
    ]  # fmt: skip
    answers = run_steps(server, peer, [(workload, args) for _, workload, args in steps])
    results = {label: answer for (label, _, _), answer in zip(steps, answers, strict=True)}
    for name, result in results.items():
        _offer_step(figures, config, name, result)
    if not single["ok"]:
        results["ingest"] = single
    for name, result in results.items():
        if not result["ok"]:
            figures.notes.append(f"{peer.title}, {config.label}: {name} failed: "
                                 f"{result['error']}")  # fmt: skip


def _offer_step(figures: PeerFigures, config: Config, name: str, result: dict[str, Any]) -> None:
    if not result["ok"]:
        return
    if name == "ingest_threads":
        figures.offer(name, result["points_per_s"], config, result)
        _record_problems(figures, name, result)
    elif name in ("log_metric_sync", "search_runs", "history"):
        figures.offer(name, result["median_s"], config, result)
    elif not result.get("implemented", True):
        figures.once[f"{name}_missing"] = f"HTTP {result['status']}: {result['body']}"
    elif result["returned"] == 0:  # an empty chart is no chart: not a time to compare with
        figures.notes.append(f"{figures.peer.title}, {config.label}: {name} returned no point")
    else:
        figures.offer(name, result["median_s"], config, result)


def _record_problems(figures: PeerFigures, workload: str, result: dict[str, Any]) -> None:
    if result.get("problems"):
        figures.problems.setdefault(workload, []).extend(result["problems"])


def run_steps(
    server: procs.Server, peer: Peer, steps: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Run MLflow-client workloads against ``server``'s tracking URI, in one process of the
    client's virtualenv; one result per step (``ok`` false with the error if it failed)."""
    pids = [server.proc.pid, *procs.descendants(server.proc.pid)]  # workers hold the CPU
    payload = json.dumps(
        {"uri": server.url, "steps": [list(s) for s in steps], "server_pids": pids}
    )
    argv = [str(CLIENT.python), "-P", str(WORKER), "steps", payload]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLTRAIL_"))}
    env["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"
    env.pop("PYTHONPATH", None)
    if peer.client_env is not None:
        env.update(peer.client_env(server))
    return procs.run_json(argv, timeout=1800, env=env, cwd=WORKER.parent)["results"]


def _journal_mode(db: Path) -> str:
    """The journal mode the peer left its database in (a property of the file)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()
