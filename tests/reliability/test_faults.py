"""Faults: nothing acknowledged is lost, nothing is stored twice.

Each test prints ``sent / acknowledged / stored / duplicates``. Training processes are real
subprocesses (tests/reliability/trainer.py) logging through the SDK to a real server
subprocess; the server is SIGKILLed and restarted on the same port and database, a trainer is
SIGKILLed, the SQLite database is locked by another process, the spool overflows.
Complements tests/sdk/test_server_mode.py (one in-process run, server killed, then sync) and
tests/sdk/test_process_death.py (SIGKILL of an embedded-mode process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mltrail.core.types import MetricBatch, SeriesChunk, Status
from mltrail.store.http import HttpStore
from support.servers import ServerProcess

TRAINER = str(Path(__file__).with_name("trainer.py"))
PROCESS_TIMEOUT = 120


def trainer_env(server: ServerProcess, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a training process talking to ``server``, spooling under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_HOME": str(home), "MLTRAIL_URL": server.url}
    env |= {"MLTRAIL_TOKEN": server.admin_token or "", "PYTHONUNBUFFERED": "1", **extra}
    return env


def launch(env: dict[str, str], *args: object) -> subprocess.Popen[str]:
    return launch_script(TRAINER, env, *args)


def launch_script(script: str, env: dict[str, str], *args: object) -> subprocess.Popen[str]:
    """A script of this folder (or a path) as a process with piped stdin, stdout and stderr."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / script), *map(str, args)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expect_line(proc: subprocess.Popen[str], word: str) -> list[str]:
    """The next stdout line, which must start with ``word``; its fields."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(word):
        proc.kill()
        raise AssertionError(f"expected {word}, got {line!r}; stderr: {proc.communicate()[1]}")
    return line.split()[1:]


def run_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mltrail", "sync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )


def stored_iterations(server: ServerProcess, p: int, e: int, key: str = "loss") -> list[int]:
    with HttpStore(server.url, server.admin_token) as store:
        return store.read_series(p, e, key, "train").iterations.tolist()


def report(title: str, sent: int, acknowledged: int, stored: int, duplicates: int) -> None:
    print(
        f"{title}: sent={sent} acknowledged={acknowledged} stored={stored} duplicates={duplicates}"
    )


def test_server_sigkill_under_three_trainers_then_sync_stores_every_point_once(
    server: ServerProcess, tmp_path: Path
):
    home = tmp_path / "trainers"
    env = trainer_env(server, home)
    # the short one ends while the server is down (no HTTP retries: it spools, sync uploads);
    # the long ones ride out the outage on the HTTP client's retries and the writer's spool
    plan = [("short", 1500, 0, "log-wait-end"), ("long-1", 5000, 5, "run"),
            ("long-2", 5000, 5, "run")]  # fmt: skip
    procs = [launch(env, name, n, 0.001, retries, mode) for name, n, retries, mode in plan]
    experiments = [tuple(map(int, expect_line(proc, "STARTED"))) for proc in procs]
    expect_line(procs[0], "LOGGED")
    time.sleep(0.5)
    acked_before_kill = sum(len(stored_iterations(server, p, e)) for p, e in experiments)
    server.kill()
    short_out, short_err = procs[0].communicate("end now\n", timeout=PROCESS_TIMEOUT)
    assert procs[0].returncode == 0, short_err
    server.start()
    spooled = [int(short_out.split("DONE")[1].split()[0])]
    for proc in procs[1:]:
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
        assert proc.returncode == 0, err
        spooled.append(int(out.split("DONE")[1].split()[0]))
    assert spooled[0] > 0, "the short run should have spooled while the server was down"
    left = len(list((home / "spool").glob("*.json")))
    assert left > 0, "nothing was left for sync"
    done = run_sync(env)
    assert done.returncode == 0, done.stderr
    assert not list((home / "spool").glob("*.json"))

    stored = duplicates = 0
    for (name, n, _, _), (p, e) in zip(plan, experiments, strict=True):
        for key in ("loss", "step"):
            its = stored_iterations(server, p, e, key)
            stored += len(its)
            duplicates += len(its) - len(set(its))
            assert its == list(range(n)), (name, key)
        with HttpStore(server.url, server.admin_token) as store:
            assert store.get_experiment(p, e).status is Status.DONE, name
    sent = 2 * sum(n for _, n, _, _ in plan)
    print(f"acknowledged before the kill: {acked_before_kill} loss points; spooled batches: "
          f"{spooled}; files left for sync: {left}")  # fmt: skip
    report("server SIGKILL, 3 trainers", sent, stored, stored, duplicates)
    assert stored == sent and duplicates == 0


def test_trainer_sigkill_keeps_everything_it_flushed(server: ServerProcess, tmp_path: Path):
    env = trainer_env(server, tmp_path / "victim")
    proc = launch(env, "victim", 3000, 0.0, 5, "flush-then-hang")
    p, e = map(int, expect_line(proc, "STARTED"))
    flushed, spooled = map(int, expect_line(proc, "FLUSHED"))
    expect_line(proc, "LOGGED")
    proc.send_signal(signal.SIGKILL)  # at once: what was logged after the flush may be in flight
    proc.wait(10)
    assert spooled == 0
    stored = {key: stored_iterations(server, p, e, key) for key in ("loss", "step")}
    its = stored["loss"]
    duplicates = len(its) - len(set(its))
    report("trainer SIGKILL", 2 * flushed, flushed, len(its), duplicates)
    assert its[:flushed] == list(range(flushed)), "an acknowledged point is missing"
    assert its == list(range(len(its))) and duplicates == 0  # whole batches, in order
    assert stored["step"] == its


def test_sqlite_locked_by_another_process_loses_nothing(server: ServerProcess, tmp_path: Path):
    env = trainer_env(server, tmp_path / "locked")
    procs = [launch(env, f"writer-{i}", 4000, 0.001, 5, "run") for i in range(3)]
    experiments = [tuple(map(int, expect_line(proc, "STARTED"))) for proc in procs]
    db_file = Path(server.db_url.removeprefix("sqlite:///"))
    # another process: a python -c holding BEGIN EXCLUSIVE on the server's database file
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('LOCKED', flush=True)\n"
        "time.sleep(float(sys.argv[2])); c.execute('COMMIT')\n"
    )
    locker = subprocess.Popen(
        [sys.executable, "-c", code, str(db_file), "3.0"], stdout=subprocess.PIPE, text=True
    )
    expect_line(locker, "LOCKED")
    t0 = time.monotonic()
    n = 10
    its = np.arange(n)
    chunk = SeriesChunk("probe", "train", its, np.full(n, -1), np.ones(n), np.ones(n))
    with HttpStore(server.url, server.admin_token) as probe:
        p0, e0 = experiments[0]
        probe.append_points(p0, e0, MetricBatch("probe", 1, (chunk,)))
    waited = time.monotonic() - t0
    assert locker.wait(30) == 0
    for proc in procs:
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
        assert proc.returncode == 0, err
        assert out.split("DONE")[1].split()[0] == "0", "a batch had to be spooled"
    stored = duplicates = 0
    for p, e in experiments:
        loss = stored_iterations(server, p, e)
        stored += len(loss)
        duplicates += len(loss) - len(set(loss))
        assert loss == list(range(4000))
    print(f"a write during the lock waited {waited:.1f} s and was stored")
    report("SQLite locked 3 s, 3 trainers", 3 * 4000, stored, stored, duplicates)
    assert waited > 1.5, "the lock did not hold the write up: the test proves nothing"
    assert stored_iterations(server, p0, e0, "probe") == list(range(n))


def test_spool_over_its_limit_drops_the_oldest_with_a_warning(
    server: ServerProcess, tmp_path: Path
):
    home = tmp_path / "tiny-spool"
    env = trainer_env(server, home, MLTRAIL_SPOOL_LIMIT_BYTES="30000")
    proc = launch(env, "overflow", 3000, 0.0, 0, "wait-then-spool")
    p, e = map(int, expect_line(proc, "STARTED"))
    server.kill()
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    _, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, err
    assert "spool over its limit of 30000 bytes: dropped the oldest unsent batch" in err
    assert "MLTRAIL_SPOOL_LIMIT_BYTES" in err
    dropped = err.count("dropped the oldest unsent batch")
    server.start()
    done = run_sync(env)
    assert done.returncode == 0, done.stderr
    its = stored_iterations(server, p, e)
    report("spool limit 30000 bytes, server down", 3000, 0, len(its), len(its) - len(set(its)))
    print(f"dropped batches: {dropped}")
    # oldest first: what survives is the newest, contiguous tail, and the final status
    assert 0 < len(its) < 3000 and its == list(range(3000 - len(its), 3000))
    assert dropped >= 1
    with HttpStore(server.url, server.admin_token) as store:
        assert store.get_experiment(p, e).status is Status.DONE
