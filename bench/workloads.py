"""mltrail's side of every workload: run the workers against fresh servers, keep the figures.

Figures land in :class:`Results` under a name per workload; :mod:`bench.rows` turns them (and
the peers' figures) into the table. A workload that crashes leaves its figures out and its rows
fail; the others still run.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.mltrail_side import MltrailSide, fresh_postgres
from bench.peer_side import PeerFigures
from bench.report import Row, fmt_ms, fmt_rate, fmt_us, markdown_table
from bench.series_data import SEED, random_walk
from bench.sizes import Sizes

FULL_SYNC = "?synchronous=full"  # MLflow's durability: every commit synced to disk


@dataclass
class Results:
    """Everything one run measured: mltrail's figures, the peers', rows, notes."""

    ours: dict[str, Any] = field(default_factory=dict)
    peers: dict[str, PeerFigures] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    scaling: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def scaling_table(self) -> str:
        header = ["points", "ingest per point", "ingest rate", "chart read (2000 pts)"]
        return markdown_table(header, self.scaling)


def calls(res: Results, side: MltrailSide, sizes: Sizes) -> None:
    """``exp.log`` cost (median, p99, writer CPU per point) and sync log latency."""
    res.ours["call_cost"] = side.run("call_cost", calls=sizes.call_calls)
    res.ours["sync_log"] = side.run("sync_log", calls=sizes.sync_calls)


def ingest(res: Results, side: MltrailSide, sizes: Sizes, name: str = "ingest") -> None:
    """SDK to commit, one run (server memory and bytes per point sampled) and 4 threads."""
    keys, iterations = sizes.ingest_keys, sizes.ingest_iterations
    before = side.used_db_bytes()
    with procs.PeakSampler(side.server.tree_rss) as memory:
        result = side.run("ingest", keys=keys, iterations=iterations)
    result["peak_rss"] = memory.peak
    result["bytes_per_point"] = (side.used_db_bytes() - before) / result["points"]
    res.ours[name] = result
    if name == "ingest":
        res.ours["ingest_threads"] = side.run(
            "ingest", keys=keys, iterations=iterations // sizes.ingest_threads,
            threads=sizes.ingest_threads,
        )  # fmt: skip


def flushes(
    res: Results, side: MltrailSide, sizes: Sizes, name: str = "flushes", float32: bool = False
) -> None:
    """Realistic flushes: random walks flushed every 10 iterations; bytes per point after.
    ``float32``: the values as PyTorch's ``.item()`` gives them (rounded to float32)."""
    before = side.used_db_bytes()
    result = side.run("flushes", keys=sizes.ingest_keys, per_flush=sizes.flush_iterations,
                      iterations=sizes.flush_experiment_iterations, float32=float32)  # fmt: skip
    result["bytes_per_point"] = (side.used_db_bytes() - before) / result["points"]
    res.ours[name] = result


def durable(res: Results, workdir: Path, sizes: Sizes) -> None:
    """Ingest and realistic flushes again on a server with ``synchronous=FULL``."""
    side = MltrailSide(workdir, name="sqlite-full", query=FULL_SYNC)
    try:
        ingest(res, side, sizes, name="ingest_full")
        flushes(res, side, sizes, name="flushes_full")
    finally:
        side.close()


def floor(res: Results, workdir: Path, sizes: Sizes) -> None:
    """The physical floor of the ingest row's points, measured in this run."""
    res.ours["floor"] = procs.run_json(
        procs.python_worker("bench.mltrail_worker", "floor", {
            "path": str(workdir / "floor.db"), "keys": sizes.ingest_keys,
            "iterations": sizes.ingest_iterations}),
        timeout=600, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip


def reads(res: Results, side: MltrailSide, sizes: Sizes) -> None:
    """The series read by the chart and full-read rows, stored with realistic flushes; then
    the scaling curve (SDK-batched series of growing length, the 10^5 one exported in full).

    The curve's chart reads are timed once every size is stored, round-robin over the sizes
    (``chart_rounds``): timed each right after its own ingest, minutes apart, the sizes'
    ratio was the ratio of the machine's load at those moments (2.27x in one published run;
    0.73x to 1.3x on the same series read again)."""
    res.ours["long_series"] = side.run(
        "series", points=sizes.history_points, per_flush=sizes.flush_iterations,
        repeats=sizes.chart_repeats, full_repeats=sizes.full_repeats, timeout=1800,
    )  # fmt: skip
    by_size: dict[int, dict[str, Any]] = {}
    for n in sizes.scaling:
        full = sizes.full_repeats if n == sizes.history_points else 0
        by_size[n] = side.run("series", points=n, repeats=sizes.chart_repeats, full_repeats=full)
        print(f"{n:,} pts: ingest {fmt_us(by_size[n]['ingest_s'] / n)}/pt", flush=True)
    rounds = side.run("chart_rounds", series=[[n, *r["ids"]] for n, r in by_size.items()],
                      rounds=sizes.chart_repeats)["chart_s"]  # fmt: skip
    for n, r in by_size.items():
        r["chart_s"] = rounds[str(n)]
        res.scaling.append([f"{n:,}", fmt_us(r["ingest_s"] / n), fmt_rate(n / r["ingest_s"]),
                            fmt_ms(r["chart_s"])])  # fmt: skip
    res.ours["scaling"] = by_size


def experiments_list(res: Results, side: MltrailSide, sizes: Sizes) -> None:
    res.ours["list"] = side.run(
        "experiments_list", experiments=sizes.list_experiments, repeats=sizes.list_repeats
    )


def stalled_sdk(res: Results, side: MltrailSide, sizes: Sizes) -> None:
    """Memory of a training process logging while the server is stopped."""
    worker = side.spawn("stalled", points=sizes.stalled_points)
    try:
        _expect(worker, "ready")
        side.server.pause()
        try:
            _go(worker)
            _expect(worker, "logged")
        finally:
            side.server.resume()
        _go(worker)
        result = _expect(worker, "growth")
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    res.ours["stalled"] = result


def concurrency(res: Results, side: MltrailSide, sizes: Sizes, workdir: Path) -> None:
    """N training processes logging at once through the SDK, on SQLite and on PostgreSQL."""
    res.ours["concurrency"] = {"SQLite": _concurrent(side, sizes)}
    with fresh_postgres() as pg_url:
        if pg_url is None:
            res.notes.append("PostgreSQL unreachable: its concurrency row was not run")
            return
        pg = MltrailSide(workdir, db_url=pg_url, name="postgres")
        try:
            res.ours["concurrency"]["PostgreSQL"] = _concurrent(pg, sizes)
        finally:
            pg.close()


def _concurrent(side: MltrailSide, sizes: Sizes) -> dict[str, Any]:
    from bench.mltrail_worker import stored_problems
    from mltrail.store.http import HttpStore

    with HttpStore(side.server.url, side.token) as store:
        project_id = store.create_project(f"concurrency-{side.server.port}").id
    args = dict(project_id=project_id, keys=sizes.concurrent_keys,
                batches=sizes.concurrent_batches,
                iterations_per_batch=sizes.concurrent_iterations_per_batch)  # fmt: skip
    workers = [side.spawn("concurrent", index=i, **args)
               for i in range(sizes.concurrent_processes)]  # fmt: skip
    try:
        for w in workers:
            _expect(w, "ready")
        for w in workers:
            _go(w)
        results = [_expect(w, "latencies") for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.wait(timeout=60)
    iterations = sizes.concurrent_batches * sizes.concurrent_iterations_per_batch
    problems = []
    with HttpStore(side.server.url, side.token) as store:
        for r in results:
            values = random_walk(sizes.concurrent_keys, iterations, SEED + r["index"])
            found = stored_problems(store, project_id, r["experiment_id"], values)
            problems += [f"process {r['index']}: {p}" for p in found]
    latencies = sorted(t for r in results for t in r["latencies"])
    return {
        "processes": len(results),
        "points": sum(r["points"] for r in results),
        "seconds": max(r["ended"] for r in results) - min(r["started"] for r in results),
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "problems": problems,
    }


def _go(worker: Any) -> None:
    worker.stdin.write("go\n")
    worker.stdin.flush()


def _expect(worker: Any, key: str, timeout_lines: int = 1000) -> dict[str, Any]:
    """Read the worker's stdout until a JSON line holding ``key``."""
    for _ in range(timeout_lines):
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"worker ended before {key!r}:\n{worker.stderr.read()[-3000:]}")
        if line.startswith("{") and key in (data := json.loads(line)):
            return data
    raise RuntimeError(f"no {key!r} from the worker")
