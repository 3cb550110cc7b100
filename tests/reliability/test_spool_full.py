"""A full or unwritable spool never costs the training run: it exits 0, a warning says what
was dropped, the counts add up (logged = stored + dropped), and the run ends ``done``, not
``running``. An embedded store in a read-only folder is one clear error, not SQLAlchemy's.

The filesystems are real: a 2 MiB tmpfs that fills up, and a read-only tmpfs, mounted for the
test (root only; skipped elsewhere) and unmounted afterwards. Trainers are real processes with
every default on (console capture, logging, the writer); the server is stopped while they log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mltrail.core.types import Status
from mltrail.store.http import HttpStore
from reliability.test_faults import (
    PROCESS_TIMEOUT,
    expect_line,
    launch_script,
    run_sync,
    trainer_env,
)
from support.servers import ServerProcess

# About 5 MB of spool: more than the 2 MiB filesystem holds. Six batches, not 24 of 5,000: each
# flush to the stopped server costs a retry's pause (0.2 s) whatever its size, and three or more
# batches of 1 MB or less still fill the filesystem partway through.
BATCHES, SIZE = 6, 20_000


def _mount(folder: Path, options: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def full_home(tmp_path: Path) -> Iterator[Path]:
    """MLTRAIL_HOME on a 2 MiB filesystem."""
    yield from _mount(tmp_path / "small", "size=2m")


@pytest.fixture
def readonly_spool(tmp_path: Path) -> Iterator[Path]:
    """MLTRAIL_HOME whose spool folder is a read-only filesystem."""
    home = tmp_path / "home"
    yield from _mount(home / "spool", "size=1m,ro")


def _train_through_an_outage(home: Path, server: ServerProcess) -> tuple[int, int, int, str]:
    """Log every batch with the server down, restart it before the run ends; the trainer must
    exit 0. Returns the experiment, the points it logged (its system metrics included) and its
    stderr."""
    env = trainer_env(server, home)
    proc = launch_script("spool_trainer.py", env, BATCHES, SIZE, "--wait", "--wait-before-end")
    project, experiment = expect_line(proc, "STARTED")
    server.stop()
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    while not proc.stdout.readline().startswith("LOGGED"):  # type: ignore[union-attr]
        pass
    server.start()
    proc.stdin.write("end\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, err[-3000:]
    logged = int(re.findall(r"^DONE \d+ \d+ (\d+)$", out, re.MULTILINE)[0])
    done = run_sync(env)  # whatever the spool kept
    assert done.returncode == 0, done.stderr
    return int(project), int(experiment), logged, err


def _check_counts(server: ServerProcess, p: int, e: int, logged: int, err: str, title: str) -> None:
    totals = re.findall(r"in all (\d+) points and (\d+) log lines of experiment", err)
    assert len(totals) == 1, err[-3000:]  # one summary warning says what was dropped
    dropped = int(totals[0][0])
    with HttpStore(server.url, server.admin_token) as store:
        series = {s.name: s.count for s in store.list_series(p, e)}
        if "train/loss" in series:  # (all of it may have been dropped)
            losses = store.read_series(p, e, "loss", "train").iterations.tolist()
            assert len(losses) == len(set(losses))  # nothing stored twice
        stored = sum(series.values())  # system metrics included
        assert store.get_experiment(p, e).status is Status.DONE
    print(f"{title}: logged {logged}, stored {stored}, dropped {dropped} (one warning)")
    assert logged >= BATCHES * SIZE and dropped > 0
    assert stored + dropped == logged


def test_a_full_spool_filesystem_drops_with_one_warning_and_the_counts_add_up(
    full_home: Path, server: ServerProcess
):
    p, e, logged, err = _train_through_an_outage(full_home, server)
    assert "No space left on device" in err
    _check_counts(server, p, e, logged, err, "spool on a full 2 MiB filesystem")


def test_an_unwritable_spool_drops_with_one_warning_and_the_counts_add_up(
    readonly_spool: Path, server: ServerProcess
):
    p, e, logged, err = _train_through_an_outage(readonly_spool.parent, server)
    assert "Read-only file system" in err
    _check_counts(server, p, e, logged, err, "read-only spool folder")


@pytest.fixture
def readonly_home(tmp_path: Path) -> Iterator[Path]:
    """MLTRAIL_HOME on a read-only filesystem."""
    yield from _mount(tmp_path / "ro", "size=1m,ro")


def test_embedded_mode_in_a_read_only_folder_is_one_clear_error(readonly_home: Path):
    home = readonly_home
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(home)
    code = "import mltrail\nwith mltrail.start('x') as exp:\n    exp.log({'a': 1.0})\n"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mltrail.core.errors.ValidationError: db_url: cannot open"), last
    assert "must exist and be writable" in last and "sqlalchemy" not in done.stderr.lower()
