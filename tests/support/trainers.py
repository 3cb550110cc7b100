"""Real training processes for tests: a Python script run with the SDK's defaults that prints
``STARTED <project> <experiment>`` once its run exists."""

from __future__ import annotations

import subprocess
import sys


def launch_trainer(
    script: str, args: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[str], int, int]:
    """Run ``python -c script *args`` under ``env``; return it and its run once STARTED.

    Raises:
        AssertionError: the script exited before printing STARTED (its stderr is in the message).
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        if line.startswith("STARTED"):
            _, p, e = line.split()
            return proc, int(p), int(e)
    raise AssertionError(f"trainer exited {proc.wait()}: {proc.stderr.read()}")
