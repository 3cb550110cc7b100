"""``python -m bench --quick`` runs end to end (mltrail side only) and reports every workload.

Timings are not asserted here (they belong to bench/, not to tests): only that each of the
issue's workloads 1-8 produced a row, that the scaling table and machine info were written,
and that no sanity check failed (every point acknowledged was stored, chart reads returned at
most max_points).
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


def test_quick_bench_reports_every_workload(tmp_path: Path) -> None:
    out = tmp_path / "quick.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode in (0, TARGET_FAILED), done.stderr[-4000:]
    report = out.read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in rows]
    workloads = [c for c in cells if c[0][:1].isdigit() and ". " in c[0]]
    for number in range(1, 9):
        assert any(c[0].startswith(f"{number}. ") for c in workloads), (
            f"no row for workload {number}"
        )
    assert all(c[2] == "—" for c in workloads)  # MLflow not run without --vs mlflow
    assert all(c[5] in ("PASS", "FAIL", "n/a") for c in workloads)
    assert any(c[0].startswith("8. ") and ", SQLite" in c[0] for c in workloads)
    assert any(c[0].startswith("8. ") and ", PostgreSQL" in c[0] for c in workloads)
    assert "| 10,000 " in report and "| 100,000 " in report  # scaling curve up to 10^5
    assert "- nproc: " in report and "- python: " in report
    # sanity checks that are not timings: stored == sent, chart reads bounded
    for c in workloads:
        assert not (c[4] == "all points stored" and c[5] == "FAIL"), c
    assert "written to" in done.stdout


def test_bench_rejects_an_unknown_anchor() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--vs", "wandb"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--vs" in done.stderr and "wandb" in done.stderr


# --- the harness's own pure parts ---------------------------------------------------------------
@pytest.fixture
def bench_modules(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.syspath_prepend(str(REPO))
    from bench import mlflow_side, report

    return SimpleNamespace(report=report, mlflow_side=mlflow_side)


def test_judge_needs_the_ratio_and_every_target(bench_modules: SimpleNamespace) -> None:
    judge = bench_modules.report.judge
    assert judge(60.0, 50, targets=[True]) is True
    assert judge(40.0, 50, targets=[True]) is False
    assert judge(60.0, 50, targets=[False]) is False
    assert judge(None, 50) is None  # MLflow not run, nothing absolute: not judged
    assert judge(None, 50, targets=[True]) is True
    assert judge(None, 50, checks=[False]) is False  # a failed sanity check always fails


def test_times_better_and_table_rendering(bench_modules: SimpleNamespace) -> None:
    report = bench_modules.report
    assert report.times_better(2e-6, 100e-6) == pytest.approx(50.0)
    assert report.times_better(None, 1.0) is None
    row = report.Row("1. call", "2.00 µs", "100.00 µs", 50.0, ">= 50x", True)
    table = report.results_table([row]).splitlines()
    assert table[0].startswith("| workload") and "| result |" in table[0]
    assert table[2].split("|")[4].strip() == "50.0x"
    assert table[2].rstrip().endswith("| PASS   |")
    assert len({len(line) for line in table}) == 1  # columns padded to one width


def test_used_sqlite_bytes_grows_with_data(bench_modules: SimpleNamespace, tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (b BLOB)")
    empty = bench_modules.mlflow_side.used_sqlite_bytes(path)
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO t VALUES (?)", [(os.urandom(1000),) for _ in range(200)])
    assert bench_modules.mlflow_side.used_sqlite_bytes(path) - empty >= 200_000
