"""Load, reduced for CI: 10 concurrent writers for 8 s, no error, nothing lost or doubled.

Runs ``python -m bench.load`` (the full form is ``python -m bench.load --writers 50 --seconds
60 [--pg]``) and checks its ``RESULT`` line. The p99 acknowledgement latency is printed, never
asserted (timing targets belong to bench/).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_bench_load(*args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--writers", "10", "--seconds", "8", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    print(done.stdout)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert done.returncode == (0 if result["ok"] else 1)
    return result


def check(result: dict, servers: int) -> None:
    assert result["servers"] == servers and result["writers"] == 10
    assert result["errors"] == 0, result["error_samples"]
    assert result["batches"] >= 10  # every writer sent something
    assert result["sent"] == result["acknowledged"] == result["stored"] > 0
    assert result["duplicates"] == 0
    per_server = result["acknowledged_per_server"]
    assert len(per_server) == servers and min(per_server) > 0  # the writers were split
    assert sum(per_server) == result["acknowledged"]
    assert result["p99_ms"] >= result["p50_ms"] > 0
    assert result["ok"]


def test_ten_writers_on_one_sqlite_server_lose_nothing():
    check(run_bench_load(), servers=1)


def test_two_servers_sharing_one_postgresql_database_lose_nothing(pg_server):
    # pg_server: skips when PostgreSQL is not reachable (bench.load makes its own database)
    check(run_bench_load("--pg"), servers=2)


@pytest.mark.parametrize("bad", [["--writers", "0"], ["--seconds", "-1"]])
def test_bad_options_are_refused(bad):
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", *bad],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "must be positive" in done.stderr
