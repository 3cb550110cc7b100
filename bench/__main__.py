"""``python -m bench [--quick] [--vs mlflow] [--vs fasttrackml] [--out FILE]``: run every
workload on mltrail (and each peer named), print the table and write it, with the peers'
winning configurations and the machine it ran on, to ``bench/results/``.

``--only mlflow-client`` runs the MLflow-client workloads of the peers named only (e.g.
``--vs fasttrackml --vs mltrail-mlflow``, a few minutes) and writes their side-by-side table,
with each server's and the MLflow client's own CPU seconds and the ratio's ceiling by CPU (the
last peer's server free), to ``bench/results/mlflow-client.md`` (not kept in git).
``--only ingest`` runs mltrail's SDK-to-commit ingest rows alone (one run and 4 threads, at
``synchronous=FULL``, the physical floor, ``exp.log`` from 8 threads; a minute or two) and
writes them to ``bench/results/ingest.md`` (not kept in git); the peer ratios need a full run.
``--only bytes`` runs mltrail's bytes-per-point rows after realistic flushes (float64 and
float32 values) and the reads of those series (a few minutes), to ``bench/results/bytes.md``
(not kept in git).
``--only compare`` runs the compare-view rows alone (100 runs of 100,000 points filled, then
read by 4 readers from one server process and from ``--workers 2``; a few minutes) and writes
them to ``bench/results/compare.md`` (not kept in git).
``--only artifacts`` runs the artifact rows alone (2 GiB up and down against the loopback copy,
RSS growth, checkpoint overhead; about a minute) and writes them to
``bench/results/artifacts.md`` (not kept in git).

A full run is kept whatever its outcome: ``bench/results/<UTC date and time>.md`` and a copy in
``latest.md``. ``--quick`` writes ``quick.md`` (not kept in git). Exit status 3 when a judged
target fails, 1 when the benchmark itself crashed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import artifacts, cliffs, procs, rows, search, workloads
from bench.mltrail_side import MltrailSide
from bench.peers import PEERS
from bench.report import Row, machine_info, render_markdown, results_table
from bench.sizes import FULL, QUICK, Sizes

QUICK_SETTLE_WINDOW = 0.4  # seconds of idle CPU that tell a started server is ready (1 s in full)
TARGET_FAILED = 3  # exit status when a judged target fails (1 stays "crashed")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (< 2 minutes)")
    parser.add_argument("--vs", action="append", default=[], choices=list(PEERS),
                        help="also measure this peer (repeatable)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="results file (default bench/results/...)")
    only = ["mlflow-client", "ingest", "artifacts", "bytes", "compare"]
    parser.add_argument("--only", choices=only,
                        help="mlflow-client: only the peers' MLflow-client workloads (no mltrail "
                             "SDK rows); ingest: only mltrail's ingest rows; artifacts: only "
                             "mltrail's artifact rows; bytes: only mltrail's storage rows and "
                             "the reads of the series they store; compare: only the compare "
                             "view's rows")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 3 when a judged target fails."""
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.quick:
        procs.SETTLE_WINDOW = QUICK_SETTLE_WINDOW
    peers = list(dict.fromkeys(args.vs))
    command = "python -m bench" + " --quick" * args.quick + "".join(f" --vs {p}" for p in peers)
    if args.only == "ingest":
        return only_ingest(args, sizes, command + " --only ingest")
    if args.only == "artifacts":
        return only_artifacts(args, sizes, command + " --only artifacts")
    if args.only == "bytes":
        return only_bytes(args, sizes, command + " --only bytes")
    if args.only == "compare":
        return only_compare(args, sizes, command + " --only compare")
    if args.only:
        return only_peers(args, sizes, peers, command + f" --only {args.only}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-") as tmp:
        res = run(Path(tmp), sizes, peers)
        keep_server_logs(Path(tmp), RESULTS / "logs")
    res.notes.append(f"total wall time {time.monotonic() - started:.0f} s")
    columns = {name: PEERS[name].column for name in peers}
    table = results_table(res.rows, columns)
    tables = [("", table)]
    if res.peers:
        tables.append(("Peers: the best configuration per workload (fastest; smallest for "
                       "memory), and every configuration tried:", rows.peer_table(res.peers)))  # fmt: skip
    tables.append(("Scaling curve (one series of N points, batched by the SDK: ingest until "
                   "committed; chart reads at max_points=2000 once every size is stored, "
                   "round-robin over the sizes):", res.scaling_table()))  # fmt: skip
    document = render_markdown(tables, machine_info(), command, res.notes)
    print("\n" + "\n\n".join(t for _, t in tables))
    for path in outputs(args):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(document)
        print(f"written to {path}")
    return TARGET_FAILED if any(r.passed is False for r in res.rows) else 0


def only_peers(args: argparse.Namespace, sizes: Sizes, peers: list[str], command: str) -> int:
    """``--only mlflow-client``: each peer's MLflow-client workloads, side by side."""
    res = workloads.Results()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-") as tmp:
        for name in peers:
            run_step(res, PEERS[name].title, lambda name=name: _peer(res, name, Path(tmp), sizes))
        keep_server_logs(Path(tmp), RESULTS / "logs")
    res.notes.append(f"total wall time {time.monotonic() - started:.0f} s")
    tables = [("", rows.client_table(res.peers, sizes)),
              ("Peers: the best configuration per workload:", rows.peer_table(res.peers))]  # fmt: skip
    document = render_markdown(tables, machine_info(), command, res.notes)
    print("\n" + "\n\n".join(t for _, t in tables))
    path = args.out or RESULTS / "mlflow-client.md"
    path.write_text(document)
    print(f"written to {path}")
    return 1 if any(r.passed is False for r in res.rows) else 0


def only_ingest(args: argparse.Namespace, sizes: Sizes, command: str) -> int:
    """``--only ingest``: mltrail's ingest rows (no peers), to ``bench/results/ingest.md``."""
    res = workloads.Results()
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-") as tmp:
        side = MltrailSide(Path(tmp))
        try:
            run_step(res, "ingest", lambda: workloads.ingest(res, side, sizes))
            run_step(res, "cliff: exp.log from 8 threads",
                     lambda: cliffs.threads_log(res, side, sizes))  # fmt: skip
        finally:
            side.close()
        run_step(res, "synchronous=FULL", lambda: workloads.durable(res, Path(tmp), sizes))
        run_step(res, "physical floor", lambda: workloads.floor(res, Path(tmp), sizes))
    rows.build(res, sizes)
    return write_part(res, command, args.out or RESULTS / "ingest.md")


def only_artifacts(args: argparse.Namespace, sizes: Sizes, command: str) -> int:
    """``--only artifacts``: mltrail's artifact rows, to ``bench/results/artifacts.md``."""
    res = workloads.Results()
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-") as tmp:
        side = MltrailSide(Path(tmp))
        try:
            run_step(res, "artifacts",
                     lambda: artifacts.run(res, side, sizes is QUICK, Path(tmp)))  # fmt: skip
        finally:
            side.close()
    return write_part(res, command, args.out or RESULTS / "artifacts.md")


def only_bytes(args: argparse.Namespace, sizes: Sizes, command: str) -> int:
    """``--only bytes``: mltrail's bytes-per-point rows after realistic flushes (float64 and
    float32 values) and the reads of the series stored so (chart reads, full read, scaling),
    to ``bench/results/bytes.md``."""
    res = workloads.Results()
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-") as tmp:
        side = MltrailSide(Path(tmp))
        try:
            run_step(res, "realistic flushes", lambda: workloads.flushes(res, side, sizes))
            run_step(res, "realistic flushes, float32 values", lambda: workloads.flushes(
                res, side, sizes, name="flushes_f32", float32=True))  # fmt: skip
            run_step(res, "reads and scaling", lambda: workloads.reads(res, side, sizes))
        finally:
            side.close()
    rows.build(res, sizes)
    return write_part(res, command, args.out or RESULTS / "bytes.md")


def only_compare(args: argparse.Namespace, sizes: Sizes, command: str) -> int:
    """``--only compare``: the compare view's rows (one batched read against one per run, and
    4 readers on ``--workers 2`` against one process), to ``bench/results/compare.md``."""
    res = workloads.Results()
    with tempfile.TemporaryDirectory(prefix="mltrail-bench-") as tmp:
        run_step(res, "cliff: compare view", lambda: cliffs.compare(res, sizes, Path(tmp)))
    rows.build(res, sizes)
    return write_part(res, command, args.out or RESULTS / "compare.md")


def write_part(res: workloads.Results, command: str, path: Path) -> int:
    """Print and write the rows of a ``--only`` part; exit status 3 when a target failed."""
    table = results_table(res.rows, {})
    document = render_markdown([("", table)], machine_info(), command, res.notes)
    print("\n" + table)
    path.write_text(document)
    print(f"written to {path}")
    return TARGET_FAILED if any(r.passed is False for r in res.rows) else 0


def outputs(args: argparse.Namespace) -> list[Path]:
    """Where the results go: ``--out``; else quick.md, or a dated file plus latest.md."""
    if args.out:
        return [args.out]
    if args.quick:
        return [RESULTS / "quick.md"]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H%M")
    return [RESULTS / f"{stamp}.md", RESULTS / "latest.md"]


def run(workdir: Path, sizes: Sizes, peers: list[str]) -> workloads.Results:
    """mltrail's workloads on fresh servers, then each peer's, then the rows."""
    res = workloads.Results()
    side = MltrailSide(workdir)
    try:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("exp.log call cost", lambda: workloads.calls(res, side, sizes)),
            ("ingest", lambda: workloads.ingest(res, side, sizes)),
            ("realistic flushes", lambda: workloads.flushes(res, side, sizes)),
            (
                "realistic flushes, float32 values",
                lambda: workloads.flushes(res, side, sizes, name="flushes_f32", float32=True),
            ),
            ("reads and scaling", lambda: workloads.reads(res, side, sizes)),
            ("experiment list", lambda: workloads.experiments_list(res, side, sizes)),
            ("stalled server", lambda: workloads.stalled_sdk(res, side, sizes)),
            ("concurrency", lambda: workloads.concurrency(res, side, sizes, workdir)),
            ("cliff: 1,000 keys", lambda: cliffs.many_keys(res, side, sizes)),
            ("cliff: exp.log from 8 threads", lambda: cliffs.threads_log(res, side, sizes)),
            ("artifacts", lambda: artifacts.run(res, side, sizes is QUICK, workdir)),
        ]
        for name, step in steps:
            run_step(res, name, step)
    finally:
        side.close()
    run_step(res, "synchronous=FULL", lambda: workloads.durable(res, workdir, sizes))
    run_step(res, "physical floor", lambda: workloads.floor(res, workdir, sizes))
    run_step(res, "search at scale", lambda: search.run(res, workdir, sizes is QUICK))
    run_step(res, "cliff: update_metrics_per_iteration",
             lambda: cliffs.iteration_metrics(res, sizes, workdir))  # fmt: skip
    run_step(res, "cliff: experiments logs", lambda: cliffs.logs_export(res, sizes, workdir))
    run_step(res, "cliff: compare view", lambda: cliffs.compare(res, sizes, workdir))
    for name in peers:
        run_step(res, PEERS[name].title, lambda name=name: _peer(res, name, workdir, sizes))
    rows.build(res, sizes)
    return res


def _peer(res: workloads.Results, name: str, workdir: Path, sizes: Sizes) -> None:
    from bench.peer_side import measure

    figures = measure(PEERS[name], workdir, sizes)
    res.peers[name] = figures
    res.notes.extend(figures.notes)
    res.notes.append(f"{figures.peer.title} configurations: " + "; ".join(figures.timings))
    for missing in ("bulk_interval_missing",):
        if missing in figures.once:
            res.notes.append(f"{figures.peer.title} has no get-history-bulk-interval "
                             f"({figures.once[missing]})")  # fmt: skip


def keep_server_logs(workdir: Path, dest: Path) -> None:
    """Copy the servers' output next to the results (the scratch directory is deleted)."""
    dest.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copyfile(log, dest / log.name)


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its children waited for (servers, workers): what a
    section costs whatever the machine's load."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_step(res: workloads.Results, name: str, step: Callable[[], None]) -> None:
    """Run one workload; a crash becomes a FAIL row (and a note) instead of ending the run."""
    started, cpu = time.monotonic(), _cpu_seconds()
    print(f"-- {name}", flush=True)
    try:
        step()
        res.notes.append(f"{name} took {time.monotonic() - started:.0f} s "
                         f"({_cpu_seconds() - cpu:.0f} s CPU)")  # fmt: skip
    except Exception as exc:
        res.add(Row(name, f"error: {type(exc).__name__}", passed=False))
        res.notes.append(f"{name} crashed: {str(exc)[-1500:]}")
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
