"""``python -m bench --quick`` runs end to end (mltrail side only) and reports every workload.

Timings are not asserted here (they belong to bench/, not to tests): only that each workload
produced its row, that the scaling table and machine info were written, and that no data check
failed (every point logged was stored with its value, chart reads returned points and kept the
series' extremes). The peers' virtualenvs are not needed: no ``--vs`` here. The harness's pure
parts (judging, the table, the best-configuration bookkeeping) are tested without any server.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parent.parent
TARGET_FAILED = 3  # bench's exit status when a timing target fails, which is allowed here
ROWS = [  # the start of every row the quick run must produce
    "ingest 100,000 pts", "same, mltrail at synchronous=FULL", "ingest, 4 runs from 4 threads",
    "ingest vs physical floor", "bytes per point, random walk, flushed every 10",
    "server peak RSS", "chart read of 3,000 pts at 2,000", "list 100 experiments",
    "exp.log, 4 metrics", "sync: exp.log + exp.flush()", "full read of 3,000 pts",
    "(secondary) bytes per point", "(secondary) ingest flushed every 10",
    "chart read of 100,000 vs 10,000 pts", "scaling 10,000 -> 100,000 pts",
    "SDK RSS growth", "4 processes through the SDK, SQLite",
    "4 processes through the SDK, PostgreSQL",
    "update_metrics_per_iteration on a hash of 1,000 epochs",
    "ingest per point, 200 keys vs 20 keys", "experiment page of 200 series",
    "exp.log into one experiment from 8 threads", "`mltrail experiments logs --no-follow`",
    "compare 10 runs x 10,000 pts at 1,000: one batched", "compare 10 runs x 10,000 pts at 1,000, 4 readers",
    "flushed every 10 iterations, compacted",
    "search page (100 of 3,000 experiments", "search page vs plain list page",
    "page cost from 300 to 3,000 experiments",
]  # fmt: skip


# a guard against a hang, not a speed check (--quick's 2 minutes are the bench's business): it
# ran past the 280 s this allowed before on a loaded machine, and CI's may be a slow one
@pytest.mark.timeout(900)
def test_quick_bench_reports_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "quick.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    assert done.returncode in (0, TARGET_FAILED), done.stderr[-4000:]
    report = out.read_text()
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert cells[0] == ["workload", "mltrail", "target", "result"]  # no peer columns
    table = cells[1 : 1 + next(i for i, c in enumerate(cells[1:]) if c[0] == "points")]
    for start in ROWS:
        assert any(c[0].startswith(start) for c in table), f"no row {start!r}:\n{report}"
    assert all(c[3] in ("PASS", "FAIL", "n/a") for c in table)
    assert not any(c[1].startswith("error") for c in table), report
    assert "search: " not in report  # every search answer checked out (a full, sorted page)
    for c in table:  # data checks never fail, whatever the timings
        assert not (c[2].startswith("stored == logged") and c[3] == "FAIL"), c
        assert not c[0].startswith(("full read", "(secondary)")) or c[3] != "FAIL", c
    chart = next(c for c in table if c[0].startswith("chart read of 3,000"))
    assert "min/max kept" in chart[1] and "(0 pts" not in chart[1]
    assert "| 10,000 " in report and "| 100,000 " in report  # scaling curve up to 10^5
    assert "- nproc: " in report and "- python: " in report
    assert "written to" in done.stdout


def test_bench_rejects_an_unknown_peer() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--vs", "wandb"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--vs" in done.stderr and "wandb" in done.stderr


# --- the harness's own pure parts ---------------------------------------------------------------
@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.syspath_prepend(str(REPO))
    from bench import disk, peer_side, peers, report, rows, sizes, workloads

    return SimpleNamespace(disk=disk, peer_side=peer_side, peers=peers, report=report,
                           rows=rows, sizes=sizes, workloads=workloads)  # fmt: skip


def test_judge_needs_every_peer_ratio_and_every_check(bench: SimpleNamespace) -> None:
    judge = bench.report.judge
    minimums = {"mlflow": 150, "fasttrackml": 50}
    assert judge({"mlflow": 160.0, "fasttrackml": 60.0}, minimums) is True
    assert judge({"mlflow": 160.0, "fasttrackml": 40.0}, minimums) is False
    assert judge({"mlflow": 160.0}, minimums) is True  # FastTrackML not run: not judged
    assert judge({}, minimums) is None  # no peer, nothing absolute: not judged
    assert judge({}, minimums, targets=[True]) is True
    assert judge({"mlflow": 160.0}, minimums, targets=[False]) is False
    assert judge({}, minimums, checks=[False]) is False  # a failed data check always fails


def test_table_has_a_column_and_a_ratio_per_peer(bench: SimpleNamespace) -> None:
    report = bench.report
    assert report.times_better(2e-6, 100e-6) == pytest.approx(50.0)
    assert report.times_better(None, 1.0) is None
    row = report.Row("ingest", "1,000 pts/s", {"mlflow": "10 pts/s"}, {"mlflow": 100.0},
                     ">= 50x", True)  # fmt: skip
    columns = {"mlflow": "MLflow", "fasttrackml": "FastTrackML"}
    table = report.results_table([row], columns).splitlines()
    heading = [c.strip() for c in table[0].strip("|").split("|")]
    assert heading == ["workload", "mltrail", "MLflow", "FastTrackML", "vs MLflow",
                       "vs FastTrackML", "target", "result"]  # fmt: skip
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[2:6] == ["10 pts/s", "—", "100.0x", "—"] and cells[-1] == "PASS"
    assert len({len(line) for line in table}) == 1  # columns padded to one width


def test_rows_fail_when_data_checks_fail(bench: SimpleNamespace) -> None:
    res = bench.workloads.Results()
    res.ours["ingest"] = {"points_per_s": 1e6, "peak_rss": 1e8, "bytes_per_point": 8.0,
                          "problems": ["metric_00: 9 of 10 points stored"]}  # fmt: skip
    res.ours["long_series"] = {"chart_s": 0.001, "chart_returned": 0,
                               "chart_keeps_min_max": False, "full_s": 0.01,
                               "full_exact": True}  # fmt: skip
    bench.rows.build(res, bench.sizes.QUICK)

    def verdict(start: str) -> str:
        return next(r.verdict for r in res.rows if r.workload.startswith(start))

    assert verdict("ingest 100,000 pts") == "FAIL"  # stored != logged
    assert verdict("chart read of 3,000 pts") == "FAIL"  # 0 points, extremes lost
    assert verdict("full read of 3,000 pts") == "n/a"  # exact, and no peer to judge against
    assert any("9 of 10 points stored" in n for n in res.notes)


def test_the_best_configuration_wins_per_workload(bench: SimpleNamespace) -> None:
    figures = bench.peer_side.PeerFigures(bench.peers.MLFLOW)
    one, two = (bench.peers.Config(label) for label in ("1 worker", "2 workers"))
    figures.offer("ingest", 7_000.0, one, {})
    figures.offer("ingest", 9_000.0, two, {})  # a rate: higher wins
    figures.offer("search_runs", 0.5, one, {})
    figures.offer("search_runs", 0.7, two, {})  # a time: lower wins
    figures.offer("server_rss", 5e8, two, {})
    figures.offer("server_rss", 3e8, one, {})  # memory: smaller wins
    assert figures.best["ingest"].config == "2 workers" and figures.value("ingest") == 9_000.0
    assert figures.best["search_runs"].config == "1 worker"
    assert figures.best["server_rss"].config == "1 worker"
    assert figures.value("history") is None


def test_client_table_sets_each_peer_beside_the_first(bench: SimpleNamespace) -> None:
    """``--only mlflow-client``: a column per peer, server CPU per unit, the last peer's ratio
    to the first (a rate: higher is better; a time: lower is), history over the client's parse."""
    config = bench.peers.Config("defaults")
    theirs = bench.peer_side.PeerFigures(bench.peers.FASTTRACKML)
    ours = bench.peer_side.PeerFigures(bench.peers.MLTRAIL_MLFLOW)
    theirs.offer("ingest", 20_000.0, config,
                 {"points": 50_000, "server_cpu_s": 1.0, "client_cpu_s": 1.5})  # fmt: skip
    ours.offer("ingest", 30_000.0, config,
               {"points": 50_000, "server_cpu_s": 0.5, "client_cpu_s": 1.25})  # fmt: skip
    theirs.offer("log_metric_sync", 0.002, config, {"calls": 100, "server_cpu_s": 0.15})
    ours.offer("log_metric_sync", 0.004, config,
               {"calls": 100, "server_cpu_s": 0.25, "client_cpu_s": 0.16})  # fmt: skip
    ours.offer("history", 1.3, config, {"client_parse_s": 1.0})
    table = bench.rows.client_table({"fasttrackml": theirs, "mltrail-mlflow": ours},
                                    bench.sizes.FULL)  # fmt: skip
    lines = [line.strip().strip("|").split("|") for line in table.splitlines()]
    cells = {r[0].strip(): [c.strip() for c in r[1:]] for r in lines if not r[0].startswith("-")}
    assert cells["workload"][-2:] == ["mltrail via MLflow vs FastTrackML",
                                      "ceiling by CPU: its server free"]  # fmt: skip
    # the ceiling: FastTrackML's server + client CPU per unit against our client's alone
    # ((20 + 30) / 25 ms per 1,000 points); not measured for log_metric: no client CPU there
    assert cells["ingest (log_batch of 1,000)"][1:] == [
        "30,000 pts/s (server 10.00 + client 25.00 ms CPU/1k pts)",
        "1.50x",
        "2.00x",
    ]
    assert cells["sync log_metric, median"][1:] == [
        "4.0 ms (server 2.50 + client 1.60 ms CPU/call)",
        "0.50x",
        "-",
    ]
    assert cells["ingest (log_batch of 1,000)"][0] == (
        "20,000 pts/s (server 20.00 + client 30.00 ms CPU/1k pts)"
    )
    assert "1.30x" in cells["the client's own parse of that history"][1]
    assert cells["search_runs, 1,000 runs"][2:] == ["-", "-"]  # measured on neither side


def test_every_peer_is_tried_tuned_and_with_its_defaults(bench: SimpleNamespace) -> None:
    """Every column, mltrail's own MLflow surface too, is the best of its real configurations
    (the untuned one last), each tried once: no column gets more samples of one setting."""
    for peer in bench.peers.PEERS.values():
        assert peer.configs[-1].label.startswith("defaults")  # the untuned figure is tried too
        assert len(peer.configs) >= 3 and peer.durability
        settings = [(c.args, tuple(sorted(c.env.items()))) for c in peer.configs]
        assert len(set(settings)) == len(settings)  # no configuration repeated
    tuned = [c.args for c in bench.peers.MLTRAIL_MLFLOW.configs[:-1]]
    assert ("--workers", "2") in tuned and bench.peers.MLTRAIL_MLFLOW.configs[-1].args == ()


def test_used_sqlite_bytes_grows_with_data(bench: SimpleNamespace, tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (b BLOB)")
    empty = bench.disk.used_sqlite_bytes(path)
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO t VALUES (?)", [(os.urandom(1000),) for _ in range(200)])
    assert bench.disk.used_sqlite_bytes(path) - empty >= 200_000


def test_publish_replaces_only_the_marked_section(bench: SimpleNamespace) -> None:
    from bench.publish import END, START, published

    readme = f"# x\n\nbefore\n{START}\nold table\n{END}\nafter\n"
    out = published(readme, "# mltrail benchmark results\n\n| new | table |\n", "r.md")
    assert out.startswith("# x\n\nbefore\n" + START) and out.endswith(END + "\nafter\n")
    assert "| new | table |" in out and "old table" not in out and "From `r.md`" in out
    with pytest.raises(ValueError):
        published("no markers", "| t |", "r.md")
