"""The README's "Recording experiments" example runs as written and records what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mltrail

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_recording_example_runs():
    section = README.read_text().split("## Recording experiments", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("weights hash") == 2
    with mltrail.as_api() as api:
        [project] = api.projects.list()
        [row] = api.experiments.list(project["project_id"])
        assert row["display_name"] == "mlp-lr0.1" and row["status"] == "done"
        assert row["metrics"]["train/loss"] == 1.0 / 200
        assert len(api.experiments.get(project["project_id"], 1)["weights"]) == 2
