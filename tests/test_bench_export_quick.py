"""The export and system-metrics benchmarks' ``--quick`` runs keep working (figures are not
judged here: speed targets live in the benchmarks, measured on a quiet machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 3), proc.stderr  # 3: a target missed on this machine's load
    return proc.stdout


def test_export_bench_quick_exports_every_point_in_each_format():
    out = _run("bench.export")
    for fmt in ("csv", "parquet", "jsonl"):
        assert f"| {fmt} | 200,000 |" in out  # every point written


def test_system_metrics_bench_quick_reports_the_share_of_a_core():
    assert "% of one core" in _run("bench.system_metrics")
