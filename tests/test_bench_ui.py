"""``python -m bench.ui`` runs end to end at small sizes (the harness keeps working); its
timings are not asserted (they belong to bench/), only that each size produced its row and
that the page read the same one page of rows whatever the project's size."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.browser


def test_ui_bench_reports_each_size(tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is missing")
    out = tmp_path / "ui.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.ui", "--sizes", "60,600", "--runs", "1", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = re.findall(
        r"^\| ([\d,]+) \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) \|", out.read_text(), re.M
    )
    assert [r[0] for r in rows] == ["60", "600"]
    assert rows[0][3] == rows[1][3]  # as many API requests for 600 experiments as for 60
    assert abs(float(rows[0][4]) - float(rows[1][4])) < 2  # and about the same bytes (one page)
    assert "First rows at 600 vs 60 experiments" in out.read_text()
