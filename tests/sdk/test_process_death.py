"""A training process killed with SIGKILL keeps what it logged more than a second before."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from mltrail.core.types import LogBatch, LogLine, Status
from mltrail.sdk.experiment import start
from mltrail.sdk.records import encode_logs
from mltrail.sdk.spool import RunAddress, Spool, target_of

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import mltrail
    exp = mltrail.start("killed", "victim")
    for i in range(5000):
        exp.log({"loss": 1.0 / (i + 1)})
    print("LOGGED", exp.project_id, exp.experiment_id, flush=True)
    time.sleep(120)
    """
)


def test_sigkill_loses_nothing_logged_before_the_last_flush_interval(settings, store):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env=dict(os.environ), stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("LOGGED"), line
        time.sleep(2.5)  # more than the writer's 1 s flush interval
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    _, p, e = line.split()
    series = store.read_series(int(p), int(e), "loss", "train")
    assert series.iterations.tolist() == list(range(5000))
    messages = [ln.message for ln in store.read_logs(int(p), int(e))]
    assert messages == [line.rstrip("\n")]
    assert store.get_experiment(int(p), int(e)).status is Status.RUNNING  # nobody could end it


def test_next_start_uploads_what_an_earlier_run_spooled(settings, store):
    earlier = store.create_experiment(store.create_project("earlier").id)
    spool = Spool.from_settings(settings)
    batch_lines = (LogLine(time.time(), "stdout", "INFO", "spooled by an earlier run"),)
    spool.write(
        RunAddress(target_of(settings), (earlier.project_id, earlier.experiment_id)),
        "old",
        encode_logs(LogBatch("old", 1, batch_lines)),
    )
    with start("later", settings=settings):
        deadline = time.monotonic() + 20
        while spool.files() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert spool.files() == []
    assert [ln.message for ln in store.read_logs(earlier.project_id, earlier.experiment_id)] == [
        "spooled by an earlier run"
    ]
