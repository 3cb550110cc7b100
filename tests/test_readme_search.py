"""The README's "Finding and managing experiments" section is real: after `mltrail demo
--no-serve` its Python block, then its CLI block, print exactly what it shows, timestamps aside."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?")


def normalise(text: str) -> list[str]:
    return [TIMESTAMP.sub("<time>", line.rstrip()) for line in text.strip().splitlines()]


def fenced(kind: str) -> list[str]:
    section = README.read_text().split("## Finding and managing experiments", 1)[1]
    return re.findall(rf"```{kind}\n(.*?)\n```", section.split("\n## ", 1)[0], flags=re.S)


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path_factory.mktemp("readme-search-home"))
    subprocess.run(
        [sys.executable, "-m", "mltrail", "demo", "--no-serve"],
        env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return env


def test_search_section_prints_what_the_readme_shows(demo_env: dict[str, str]) -> None:
    (code,), (expected,) = fenced("python"), fenced("text")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=demo_env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert normalise(proc.stdout) == normalise(expected)
    (console,) = fenced("console")
    for block in re.split(r"^\$ ", console, flags=re.M)[1:]:
        command, _, shown = block.partition("\n")
        args = shlex.split(command)
        assert args[0] == "mltrail"
        proc = subprocess.run(
            [sys.executable, "-m", "mltrail", *args[1:]],
            env=demo_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert normalise(proc.stdout + proc.stderr) == normalise(shown), command
        assert (proc.returncode != 0) == shown.startswith("Error:"), command
