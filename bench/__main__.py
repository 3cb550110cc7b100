"""``python -m bench [--quick] [--vs mlflow] [--out FILE]``: run every workload, print the table
and write it (with the machine it ran on) to ``bench/results/latest.md``."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import workloads
from bench.mltrail_side import MltrailSide
from bench.report import Row, machine_info, render_markdown, results_table
from bench.sizes import FULL, QUICK

TARGET_FAILED = 3  # exit status when a judged target fails (1 stays "crashed")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (< 2 minutes)")
    parser.add_argument("--vs", choices=["mlflow"], help="also run the MLflow anchor")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/...)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 3 when a judged target fails."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    command = (
        "python -m bench" + (" --quick" if args.quick else "") + (" --vs mlflow" if args.vs else "")
    )
    out = args.out or RESULTS / ("quick.md" if args.quick else "latest.md")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-") as tmp:
        res = run(Path(tmp), sizes, args.vs == "mlflow")
        keep_server_logs(Path(tmp), out.parent / "logs")
    res.notes.append(f"total wall time {time.monotonic() - started:.0f} s")
    print("\n" + results_table(res.rows) + "\n\n" + res.scaling_table())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        render_markdown(res.rows, res.scaling_table(), machine_info(), command, res.notes)
    )
    print(f"\nwritten to {out}")
    return TARGET_FAILED if any(r.passed is False for r in res.rows) else 0


def run(workdir: Path, sizes, vs_mlflow: bool) -> workloads.Results:
    """Start the servers fresh, run workloads 1-8 in order, stop everything."""
    res = workloads.Results()
    side = MltrailSide(workdir)
    mlflow = None
    try:
        if vs_mlflow:
            from bench.mlflow_side import MlflowSide

            mlflow = MlflowSide(workdir)
        steps = [
            ("1", "call cost", lambda: workloads.call_cost(res, side, mlflow, sizes)),
            ("2", "ingest", lambda: workloads.ingest(res, side, mlflow, sizes)),
            (
                "4",
                "reads and scaling",
                lambda: workloads.reads_and_scaling(res, side, mlflow, sizes),
            ),
            ("5", "experiment list", lambda: workloads.experiments_list(res, side, mlflow, sizes)),
            ("6", "stalled server", lambda: workloads.stalled_sdk(res, side, sizes)),
            ("8", "concurrency", lambda: workloads.concurrency(res, side, sizes, workdir)),
        ]
        for number, name, step in steps:
            run_step(res, number, name, step)
    finally:
        side.close()
        if mlflow is not None:
            mlflow.close()
    return res


def keep_server_logs(workdir: Path, dest: Path) -> None:
    """Copy the servers' output next to the results (the scratch directory is deleted)."""
    dest.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copyfile(log, dest / log.name)


def run_step(res: workloads.Results, number: str, name: str, step: Callable[[], None]) -> None:
    """Run one workload; a crash becomes a FAIL row (and a note) instead of ending the run."""
    started = time.monotonic()
    try:
        step()
        res.notes.append(f"workload {number} ({name}) took {time.monotonic() - started:.0f} s")
    except Exception as exc:
        res.add(Row(f"{number}. {name}", f"error: {type(exc).__name__}", passed=False))
        res.notes.append(f"workload {number} ({name}) crashed: {str(exc)[-1500:]}")
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
