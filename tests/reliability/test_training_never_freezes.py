"""The plainest training loop never freezes, with every default on (console capture included).

A writer that spooled while holding its buffer lock emitted a ``SpoolWarning``; console capture
turned the warning into a log line, whose ``add_line`` waited for the same lock: ``exp.log``
never returned. One store write slower than 0.5 s under a fast loop was enough, in embedded and
in server mode. Here a 1,000,000-step loop runs as a real process with the defaults, with and
without a stalled store (the SQLite file locked by another process; the server SIGSTOPped),
under a time limit; afterwards (and after ``mltrail sync``) every point is stored exactly once.
A stalled loop runs 600,000 steps: it pauses at 200,000, and the 400,000 after the pause are twice
what the writer holds in memory before it spools, so the stall makes it spool (the freeze's path).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mltrail.config import Settings
from mltrail.sdk.writer import BATCH_POINTS, BUFFERED_BATCHES
from mltrail.store import open_store
from mltrail.store.http import HttpStore
from reliability.test_faults import report
from support.servers import ServerProcess

TRAINER = str(Path(__file__).with_name("plain_trainer.py"))
STEPS = 1_000_000
STALL_AT = 200_000  # where a stalled loop pauses while the test stalls the store
STALLED_STEPS = STALL_AT + 2 * BUFFERED_BATCHES * BATCH_POINTS  # 600,000
TIME_LIMIT = 240  # a healthy run takes seconds; a freeze runs into this
STALL_SECONDS = 5.0


def _env(home: Path, server: ServerProcess | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    if server is not None:
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.admin_token or ""}
    return env


def _launch(env: dict[str, str], *args: object, steps: int = STEPS) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, TRAINER, str(steps), *map(str, args)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc: subprocess.Popen[str], word: str) -> list[str]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"trainer ended before {word}: {proc.communicate()[1][-2000:]}")
        if line.startswith(word):
            return line.split()[1:]


def _finish(proc: subprocess.Popen[str]) -> str:
    """Wait for the trainer within the time limit; a frozen one fails the test."""
    try:
        out, err = proc.communicate(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(
            f"training froze (killed after {TIME_LIMIT} s): {err[-2000:]}"
        ) from None
    assert proc.returncode == 0, err[-2000:]
    assert "DONE" in out
    return err


def _sync(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
    )
    assert done.returncode == 0, done.stderr


def _check_stored(store, project: int, experiment: int, title: str, steps: int = STEPS) -> None:
    series = store.read_series(project, experiment, "loss", "train")
    iterations = series.iterations.tolist()
    duplicates = len(iterations) - len(set(iterations))
    report(title, steps, len(iterations), len(iterations), duplicates)
    assert iterations == list(range(steps))
    assert series.values[-1] == (steps - 1) * 0.5


def _check_embedded(
    home: Path, project: str, experiment: str, title: str, steps: int = STEPS
) -> None:
    settings = Settings.from_env({"MLTRAIL_HOME": str(home)})
    with open_store(settings) as store:
        _check_stored(store, int(project), int(experiment), title, steps)


def _hold_sqlite_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process takes the SQLite file's exclusive lock for ``seconds``."""
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('LOCKED', flush=True)\n"
        "time.sleep(float(sys.argv[2])); c.execute('COMMIT')\n"
    )
    locker = subprocess.Popen(
        [sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    _wait_for(locker, "LOCKED")
    return locker


def test_plain_million_step_loop_finishes_in_embedded_mode(tmp_path: Path):
    env = _env(tmp_path)
    proc = _launch(env)
    project, experiment = _wait_for(proc, "STARTED")
    _finish(proc)
    _sync(env)
    _check_embedded(tmp_path, project, experiment, "embedded, 1M plain steps")


def test_plain_million_step_loop_finishes_in_server_mode(tmp_path: Path, server: ServerProcess):
    env = _env(tmp_path, server)
    proc = _launch(env)
    project, experiment = _wait_for(proc, "STARTED")
    _finish(proc)
    _sync(env)
    with HttpStore(server.url, server.admin_token) as store:
        _check_stored(store, int(project), int(experiment), "server, 1M plain steps")


def test_sqlite_file_locked_by_another_process_never_freezes_training(tmp_path: Path):
    env = _env(tmp_path)
    proc = _launch(env, STALL_AT, steps=STALLED_STEPS)
    project, experiment = _wait_for(proc, "STARTED")
    _wait_for(proc, "PAUSED")
    locker = _hold_sqlite_lock(tmp_path / "mltrail.db", STALL_SECONDS)
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    _finish(proc)
    assert locker.wait(60) == 0
    _sync(env)
    _check_embedded(tmp_path, project, experiment, "embedded, file locked 5 s", STALLED_STEPS)


def test_sigstopped_server_never_freezes_training(tmp_path: Path, server: ServerProcess):
    assert server.proc is not None
    env = _env(tmp_path, server)
    proc = _launch(env, STALL_AT, steps=STALLED_STEPS)
    project, experiment = _wait_for(proc, "STARTED")
    _wait_for(proc, "PAUSED")
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(STALL_SECONDS)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    _finish(proc)
    _sync(env)
    with HttpStore(server.url, server.admin_token) as store:
        _check_stored(store, int(project), int(experiment), "server SIGSTOPped 5 s", STALLED_STEPS)
