"""A busy console never freezes training while the store stalls (capture on, the defaults).

Console capture sits on the training thread's every print: with the store stalled (server
SIGSTOPped, SQLite file locked by another process) a trainer that prints, writes to fd 1, logs
records, draws a tqdm bar and runs child processes must still finish in time, print everything
locally, and afterwards (and after ``mltrail sync``) have every point stored exactly once and
its console lines in the run's logs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from mltrail.config import Settings
from mltrail.store import open_store
from mltrail.store.http import HttpStore
from reliability.test_faults import report
from reliability.test_training_never_freezes import _env, _hold_sqlite_lock, _sync
from support.servers import ServerProcess

TRAINER = str(Path(__file__).with_name("console_trainer.py"))
STEPS = 200_000
PAUSE_AT = 20_000
TIME_LIMIT = 240  # a healthy run takes seconds; a freeze runs into this
STALL_SECONDS = 5.0


class _Trainer:
    """The trainer process, its stdout and stderr read as they come (a full pipe would freeze
    it whatever mltrail does)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, TRAINER, str(STEPS), str(PAUSE_AT)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=_read_into, args=(stream, into), daemon=True).start()

    def wait_for(self, word: str) -> list[str]:
        deadline = time.monotonic() + TIME_LIMIT
        while time.monotonic() < deadline:
            for line in b"".join(self.out).decode().splitlines():
                if line.startswith(word):
                    return line.split()[1:]
            if self.proc.poll() is not None:
                raise AssertionError(f"trainer ended before {word}: {self.stderr[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no {word} within {TIME_LIMIT} s")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        try:
            self.proc.wait(TIME_LIMIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"training froze (killed after {TIME_LIMIT} s)") from None
        assert self.proc.returncode == 0, self.stderr[-2000:]
        self.wait_for("DONE")

    @property
    def stderr(self) -> str:
        return b"".join(self.err).decode(errors="replace")


def _read_into(stream, into: list[bytes]) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        into.append(chunk)


def _check(store, project: int, experiment: int, trainer: _Trainer, title: str) -> None:
    series = store.read_series(project, experiment, "loss", "train")
    iterations = series.iterations.tolist()
    report(title, STEPS, len(iterations), len(iterations), len(iterations) - len(set(iterations)))
    assert iterations == list(range(STEPS))
    printed = b"".join(trainer.out).decode()
    assert all(f"{word}\n" in printed for word in ("step 199000", "raw 199000", "child 150000"))
    lines, after = [], 0
    while page := store.read_logs(project, experiment, after_seq=after):
        lines += page
        after = page[-1].seq
    stdout = [ln.message for ln in lines if ln.stream == "stdout"]
    assert [m for m in stdout if m.startswith("step ")] == [
        f"step {i}" for i in range(0, STEPS, 1000)
    ]
    assert [m for m in stdout if m.startswith("raw ")] == [
        f"raw {i}" for i in range(0, STEPS, 1000)
    ]
    assert [m for m in stdout if m.startswith("child ")] == [
        f"child {i}" for i in range(0, STEPS, 50_000)
    ]
    assert stdout[-1] == "LAST LINE"
    records = [ln.message for ln in lines if ln.stream == "noisy"]
    assert records == [f"logged {i}" for i in range(0, STEPS, 1000)]
    assert not [ln for ln in lines if ln.stream.startswith(("httpx", "httpcore"))]
    bar = [ln for ln in lines if ln.stream == "stderr" and "it/s" in ln.message]
    assert bar and f"{STEPS}/{STEPS}" in bar[-1].message
    print(f"{title}: {len(lines)} log lines stored, {len(bar)} progress states")


def test_busy_console_under_a_locked_sqlite_file_never_freezes_training(tmp_path: Path):
    env = _env(tmp_path)
    env.pop("PYTHONUNBUFFERED")  # Python's own buffering, as a user has it
    trainer = _Trainer(env)
    project, experiment = trainer.wait_for("STARTED")
    trainer.wait_for("PAUSED")
    locker = _hold_sqlite_lock(tmp_path / "mltrail.db", STALL_SECONDS)
    trainer.go()
    trainer.finish()
    assert locker.wait(60) == 0
    _sync(env)
    with open_store(Settings.from_env({"MLTRAIL_HOME": str(tmp_path)})) as store:
        _check(
            store, int(project), int(experiment), trainer, "embedded, busy console, file locked 5 s"
        )


def test_busy_console_under_a_sigstopped_server_never_freezes_training(
    tmp_path: Path, server: ServerProcess
):
    assert server.proc is not None
    env = _env(tmp_path, server)
    env.pop("PYTHONUNBUFFERED")
    trainer = _Trainer(env)
    project, experiment = trainer.wait_for("STARTED")
    trainer.wait_for("PAUSED")
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        trainer.go()
        time.sleep(STALL_SECONDS)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    trainer.finish()
    assert "HTTP Request" not in trainer.stderr
    _sync(env)
    with HttpStore(server.url, server.admin_token) as store:
        _check(store, int(project), int(experiment), trainer, "server SIGSTOPped 5 s, busy console")
