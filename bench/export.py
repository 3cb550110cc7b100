"""``python -m bench.export [--quick]``: exporting whole histories, points per second.

Fills an embedded store (SQLite in a temporary folder) with 10^7 points (10 series of one
experiment, stored in the SDK's 50,000-point batches; ``--quick``: 2 * 10^5), then times
``api.experiments.export`` to a file in each format, from the first store read to the file
closed. Targets (issue 15): CSV >= 5M points/s, Parquet >= 10M points/s; JSON lines is shown
without a target. Prints the load average it ran under and the CPU seconds each export used,
with the kernel's part of them (points per CPU second does not depend on the load the way wall
time does): on a shared machine the figures scale with the cores actually free. Writes the table to
``bench/results/export-latest.md`` (not with ``--quick``). Exit status 3 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mltrail.api import Api
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.sql import SqlStore

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"csv": 5e6, "parquet": 10e6}
SERIES = 10
BATCH = 50_000


def fill(store: SqlStore, points: int) -> tuple[int, int]:
    """One experiment holding ``points`` points over :data:`SERIES` series."""
    project = store.create_project("export-bench").id
    experiment = store.create_experiment(project).experiment_id
    per_series = points // SERIES
    rng = np.random.default_rng(0)
    for seq, first in enumerate(range(0, per_series, BATCH)):
        n = min(BATCH, per_series - first)
        it = np.arange(first, first + n, dtype=np.int64)
        chunks = tuple(
            SeriesChunk(f"metric_{k}", "train", it, it // 1000, rng.random(n), 1.7e9 + it * 0.01)
            for k in range(SERIES)
        )
        store.append_points(project, experiment, MetricBatch("bench", seq, chunks))
    return project, experiment


def time_export(api: Api, project: int, fmt: str, path: Path) -> tuple[int, float, float, float]:
    """Points written, wall seconds, CPU seconds of this process (every thread) and the part of
    them spent in the kernel (the file's page cache, fresh memory's first touch)."""
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    with open(path, "wb") as out:
        written = api.experiments.export(project, out, format=fmt)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    system = after.ru_stime - before.ru_stime
    return written, wall, after.ru_utime - before.ru_utime + system, system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 * 10^5 points")
    parser.add_argument("--formats", default="csv,parquet,jsonl", help="comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS / "export-latest.md")
    args = parser.parse_args(argv)
    points = 200_000 if args.quick else 10_000_000
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401 - imported once up front, as a long export amortises it

    failed = False
    rows = []
    with tempfile.TemporaryDirectory(prefix="mltrail-export-bench-") as tmp:
        store = SqlStore.open(f"sqlite:///{Path(tmp) / 'mltrail.db'}")
        started = time.perf_counter()
        project, _ = fill(store, points)
        print(f"stored {points:,} points in {time.perf_counter() - started:.1f} s")
        api = Api(store)
        for fmt in args.formats.split(","):
            path = Path(tmp) / f"export.{fmt}"
            load = os.getloadavg()[0]
            written, seconds, cpu, system = time_export(api, project, fmt, path)
            rate = written / seconds
            target = TARGETS.get(fmt)
            verdict = "" if target is None else ("ok" if rate >= target else "MISSED")
            failed |= target is not None and rate < target and not args.quick
            size = path.stat().st_size / 1e6
            row = (
                f"| {fmt} | {written:,} | {seconds:.2f} | {rate / 1e6:.2f}M | {cpu:.2f} | "
                f"{system:.2f} | {written / cpu / 1e6:.2f}M | {size:.1f} | {load:.1f} | "
                + (f"{target / 1e6:.0f}M/s {verdict}" if target else "(none)")
                + " |"
            )
            print(row, flush=True)
            rows.append(row)
            path.unlink()
        api.close()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.quick:
        args.out.write_text(report(rows, points))
        print(f"wrote {args.out}")
    return 3 if failed else 0


def report(rows: list[str], points: int) -> str:
    return "\n".join(
        [
            "# Export benchmark: whole histories to a file",
            "",
            f"`python -m bench.export`: {points:,} points (10 series of one experiment) in an "
            f"embedded SQLite store, exported with `api.experiments.export` to a file; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f} at the end.",
            "",
            "| format | points | wall s | points/s | CPU s | of which system | points per CPU s "
            "| MB | load before | target |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            *rows,
            "",
            "CPU seconds count every thread of the process (reads ahead, formatting pool, the "
            "writes' kernel time); on a shared machine the wall rate follows the cores left free. "
            "The system part is the kernel copying the file into page cache and zeroing fresh "
            "memory on first touch (buffers the allocator did not reuse).",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
