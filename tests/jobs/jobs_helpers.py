"""Helpers shared by the remote-execution tests (a module of its own: several test folders
have a conftest.py, so `from conftest import ...` would be ambiguous)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LAUNCH = "import sys; from mltrail.cli.main import main; main(sys.argv[1:])"


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll until ``predicate()`` is truthy and return it; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def cli_env(home: Path, url: str | None = None, token: str | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: no inherited MLTRAIL_*, this home, url and token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(home)
    if url:
        env["MLTRAIL_URL"] = url
    if token:
        env["MLTRAIL_TOKEN"] = token
    return env


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``mltrail ARGS`` in a subprocess and capture its output."""
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
