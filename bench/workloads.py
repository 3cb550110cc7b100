"""The issue's workloads 1-8, each turned into table rows (mltrail, MLflow, ratio, target)."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.mltrail_side import MltrailSide, fresh_postgres
from bench.report import (
    NOT_RUN,
    Row,
    fmt_bytes,
    fmt_ms,
    fmt_rate,
    fmt_us,
    judge,
    markdown_table,
    times_better,
)
from bench.sizes import Sizes

STALL_GROWTH_LIMIT = 64 * 1024 * 1024


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    scaling: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(" | ".join(row.cells()), flush=True)

    def scaling_table(self) -> str:
        header = ["points", "ingest per point", "ingest rate", "chart read (2000 pts)"]
        return markdown_table(header, self.scaling)


def call_cost(res: Results, side: MltrailSide, mlflow: Any, sizes: Sizes) -> None:
    """1: median cost of exp.log with 4 metrics vs MLflow's asynchronous log_metric."""
    ours = side.run("call_cost", calls=sizes.call_calls)
    theirs = mlflow.run("call_cost", calls=sizes.mlflow_call_calls) if mlflow else None
    median = ours["median_us"] / 1e6
    ratio = times_better(median, theirs["median_us"] / 1e6) if theirs else None
    res.add(Row(
        f"1. exp.log, 4 metrics, median of {sizes.call_calls:,} calls",
        fmt_us(median), fmt_us(theirs["median_us"] / 1e6) if theirs else NOT_RUN, ratio,
        ">= 50x, < 10 µs", judge(ratio, 50, targets=[median < 10e-6]),
    ))  # fmt: skip
    if ours["stored"] != 4 * sizes.call_calls:
        res.notes.append(f"workload 1 stored {ours['stored']} of {4 * sizes.call_calls} points")


def ingest(res: Results, side: MltrailSide, mlflow: Any, sizes: Sizes) -> None:
    """2, 3 and 6: end-to-end ingest, database bytes per point, server peak memory."""
    points = sizes.ingest_keys * sizes.ingest_iterations
    before = side.used_db_bytes()
    with procs.PeakSampler(side.server.tree_rss) as memory:
        ours = side.run("ingest", keys=sizes.ingest_keys, iterations=sizes.ingest_iterations)
    ours_bpp = (side.used_db_bytes() - before) / points
    theirs, theirs_bpp, theirs_peak = None, None, None
    if mlflow:
        mlflow_before = mlflow.used_db_bytes()
        with procs.PeakSampler(mlflow.server.tree_rss) as mlflow_memory:
            theirs = mlflow.run(
                "ingest", keys=sizes.ingest_keys, iterations=sizes.mlflow_ingest_iterations
            )
        theirs_bpp = (mlflow.used_db_bytes() - mlflow_before) / theirs["points"]
        theirs_peak = mlflow_memory.peak
        res.notes.append(f"MLflow ingest: {theirs['points']:,} points in log_batch chunks of "
                         f"1,000 ({theirs['seconds']:.1f} s)")  # fmt: skip
    ratio = (ours["points_per_s"] / theirs["points_per_s"]) if theirs else None
    res.add(Row(f"2. ingest {points:,} points ({sizes.ingest_keys} keys), SDK to commit",
                fmt_rate(ours["points_per_s"]), fmt_rate(theirs["points_per_s"]) if theirs
                else NOT_RUN, ratio, ">= 100x", judge(ratio, 100)))  # fmt: skip
    if ours["stored"] != points:
        res.notes.append(f"workload 2 stored {ours['stored']:,} of {points:,} points")
    ratio = times_better(ours_bpp, theirs_bpp)
    res.add(Row("3. database bytes per point after 2", f"{ours_bpp:,.1f} B",
                f"{theirs_bpp:,.1f} B" if theirs_bpp else NOT_RUN, ratio, "<= 1/5 (>= 5x)",
                judge(ratio, 5)))  # fmt: skip
    ratio = times_better(memory.peak, theirs_peak)
    res.add(Row("6. server peak RSS (process tree) during 2", fmt_bytes(memory.peak),
                fmt_bytes(theirs_peak) if theirs_peak else NOT_RUN, ratio, "<= 1/10 (>= 10x)",
                judge(ratio, 10)))  # fmt: skip


def stalled_sdk(res: Results, side: MltrailSide, sizes: Sizes) -> None:
    """6 (SDK side): memory of a training process logging while the server is stopped."""
    worker = side.spawn("stalled", points=sizes.stalled_points)
    try:
        _expect(worker, "ready")
        side.server.pause()
        try:
            worker.stdin.write("go\n")
            worker.stdin.flush()
            _expect(worker, "logged")
        finally:
            side.server.resume()
        worker.stdin.write("go\n")
        worker.stdin.flush()
        result = _expect(worker, "growth")
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    growth = result["growth"]
    res.add(Row(f"6. SDK RSS growth, {sizes.stalled_points:,} points to a stalled server",
                fmt_bytes(growth), NOT_RUN, None, f"< {fmt_bytes(STALL_GROWTH_LIMIT)} (bounded)",
                growth < STALL_GROWTH_LIMIT))  # fmt: skip


def _expect(worker: Any, key: str, timeout_lines: int = 1000) -> dict[str, Any]:
    """Read the worker's stdout until a JSON line holding ``key``."""
    for _ in range(timeout_lines):
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"worker ended before {key!r}:\n{worker.stderr.read()[-3000:]}")
        if line.startswith("{") and key in (data := json.loads(line)):
            return data
    raise RuntimeError(f"no {key!r} from the worker")


def reads_and_scaling(res: Results, side: MltrailSide, mlflow: Any, sizes: Sizes) -> None:
    """4 and 7: chart reads and full export against get_metric_history; the scaling curve."""
    by_size: dict[int, dict[str, Any]] = {}
    for n in sizes.scaling:
        full = sizes.full_repeats if n == sizes.history_points else 0
        r = side.run("series", points=n, repeats=sizes.chart_repeats, full_repeats=full)
        by_size[n] = r
        res.scaling.append([f"{n:,}", fmt_us(r["ingest_s"] / n), fmt_rate(n / r["ingest_s"]),
                            fmt_ms(r["chart_s"])])  # fmt: skip
        print(" | ".join(res.scaling[-1]), flush=True)
    base, largest = by_size[sizes.history_points], by_size[max(sizes.scaling)]
    theirs = mlflow.run("history", points=sizes.history_points,
                        repeats=sizes.mlflow_history_repeats) if mlflow else None  # fmt: skip
    h = f"{sizes.history_points:,}"
    ratio = times_better(base["chart_s"], theirs["median_s"]) if theirs else None
    res.add(Row(f"4. chart read of {h} points (max_points=2000)", fmt_ms(base["chart_s"]),
                fmt_ms(theirs["median_s"]) if theirs else NOT_RUN, ratio, ">= 100x",
                judge(ratio, 100, checks=[base["chart_returned"] <= 2000])))  # fmt: skip
    slower = largest["chart_s"] / base["chart_s"]
    res.add(Row(f"4. chart read of {max(sizes.scaling):,} vs {h} points",
                f"{fmt_ms(largest['chart_s'])} ({slower:.2f}x)", NOT_RUN, None, "<= 2x",
                slower <= 2))  # fmt: skip
    ratio = times_better(base["full_s"], theirs["median_s"]) if theirs else None
    res.add(Row(f"4. full export of {h} points", fmt_ms(base["full_s"]),
                fmt_ms(theirs["median_s"]) if theirs else NOT_RUN, ratio, ">= 10x",
                judge(ratio, 10, checks=[base["full_returned"] == sizes.history_points])))  # fmt: skip
    _scaling_row(res, by_size, sizes)


def _scaling_row(res: Results, by_size: dict[int, dict[str, Any]], sizes: Sizes) -> None:
    """7: flat means the largest size costs at most 2x the 10^5 one (10^4 in --quick), per
    point ingested and per chart read."""
    small, large = sizes.scaling[1 if len(sizes.scaling) > 2 else 0], sizes.scaling[-1]
    ref, top = by_size[small], by_size[large]
    ingest = (top["ingest_s"] / large) / (ref["ingest_s"] / small)
    chart = top["chart_s"] / ref["chart_s"]
    res.add(Row(f"7. scaling {small:,} -> {large:,} points",
                f"ingest/pt {ingest:.2f}x, chart {chart:.2f}x", NOT_RUN, None, "both <= 2x",
                ingest <= 2 and chart <= 2))  # fmt: skip


def experiments_list(res: Results, side: MltrailSide, mlflow: Any, sizes: Sizes) -> None:
    """5: as_api().experiments.list against search_runs over the same number of runs."""
    n = sizes.list_experiments
    ours = side.run("experiments_list", experiments=n, repeats=sizes.list_repeats)
    theirs = mlflow.run("runs_list", runs=n, repeats=sizes.list_repeats) if mlflow else None
    ratio = times_better(ours["median_s"], theirs["median_s"]) if theirs else None
    res.add(Row(f"5. list {n:,} experiments (5 metrics, 5 params)", fmt_ms(ours["median_s"]),
                fmt_ms(theirs["median_s"]) if theirs else NOT_RUN, ratio, ">= 10x",
                judge(ratio, 10, checks=[ours["listed"] == n])))  # fmt: skip


def concurrency(res: Results, side: MltrailSide, sizes: Sizes, workdir: Path) -> None:
    """8: N processes logging at once, on SQLite (the main server) and on PostgreSQL."""
    _concurrency_row(res, side, sizes, "SQLite")
    with fresh_postgres() as pg_url:
        if pg_url is None:
            res.add(
                Row(
                    f"8. {sizes.concurrent_processes} processes, PostgreSQL",
                    "PostgreSQL unreachable",
                    target="all points stored",
                    passed=None,
                )
            )
            return
        pg = MltrailSide(workdir, db_url=pg_url, name="postgres")
        try:
            _concurrency_row(res, pg, sizes, "PostgreSQL")
        finally:
            pg.close()


def _concurrency_row(res: Results, side: MltrailSide, sizes: Sizes, backend: str) -> None:
    from mltrail.store.http import HttpStore

    with HttpStore(side.server.url, side.token) as store:
        project_id = store.create_project(f"concurrency-{backend}").id
    args = dict(
        project_id=project_id,
        keys=sizes.concurrent_keys,
        batches=sizes.concurrent_batches,
        iterations_per_batch=sizes.concurrent_iterations_per_batch,
    )
    workers = [side.spawn("concurrent", **args) for _ in range(sizes.concurrent_processes)]
    try:
        for w in workers:
            _expect(w, "ready")
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        results = [_expect(w, "latencies") for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.wait(timeout=60)
    sent = sum(r["points"] for r in results)
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    latencies = sorted(t for r in results for t in r["latencies"])
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    with HttpStore(side.server.url, side.token) as store:
        stored = sum(s.count for e in store.list_experiments(project_id).items
                     for s in store.list_series(project_id, e.experiment_id))  # fmt: skip
    res.add(Row(f"8. {len(workers)} processes, {backend}, {sent:,} points",
                f"{fmt_rate(sent / seconds)}, ack p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}",
                NOT_RUN, None, "all points stored", stored == sent))  # fmt: skip
