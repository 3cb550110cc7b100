"""The README's artifacts example is real: its training script runs, and ``mltrail artifacts
list`` and ``models download`` print what the README shows (sizes, weights hashes and sha256 of
the checkpoints: fixed weights make the same files on every run), timestamps aside."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section() -> str:
    return README.read_text().split("## Artifacts and checkpoints", 1)[1].split("\n## ", 1)[0]


def shown(command: str) -> list[str]:
    """The lines the README's console block shows after ``$ command``."""
    console = re.findall(r"```console\n(.*?)\n```", section(), flags=re.S)[0]
    after = console.split(f"$ {command}\n", 1)[1]
    return after.split("\n$ ", 1)[0].splitlines()


def test_the_artifacts_example_lists_and_downloads_what_the_readme_shows(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    script = re.findall(r"```python\n(.*?)\n```", section(), flags=re.S)[0]
    (tmp_path / "train.py").write_text(script + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path / "home")

    def run(*args: str) -> list[str]:
        done = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return [line.rstrip() for line in done.stdout.splitlines()]

    assert run(sys.executable, "train.py") == shown("python train.py")
    cli = [sys.executable, "-m", "mltrail"]
    assert run(*cli, "artifacts", "list", "-p", "1", "-e", "1") == shown(
        "mltrail artifacts list -p 1 -e 1"
    )
    weights = "933b439bc12fe93b146d2191186741ffd01e90ea"
    download = f"models download -w {weights} -d model.pt"
    assert run(*cli, *download.split()) == shown(f"mltrail {download}")
