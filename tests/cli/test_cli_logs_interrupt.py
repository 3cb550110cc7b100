"""Ctrl-C during ``mltrail experiments logs`` (following a running run) ends it quietly with
exit status 130, as a shell expects of an interrupted command, not 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from mltrail.store.sql import SqlStore
from support.factories import log_batch


def test_ctrl_c_while_following_exits_130_without_a_traceback(tmp_path: Path) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'mltrail.db'}")
    try:
        project = store.create_project("live")
        run = store.create_experiment(project.id, display_name="running")  # running, no end
        store.append_logs(project.id, run.experiment_id, log_batch("w", 1, "first line"))
    finally:
        store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path)
    follower = subprocess.Popen(
        [sys.executable, "-m", "mltrail", "experiments", "logs", "-p", "live", "-e", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().endswith("first line\n")  # it is following now
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 130
    assert "Traceback" not in err
