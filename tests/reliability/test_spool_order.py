"""Spool order is not the wall clock: a backward clock jump must not make the spool drop the
newest batches first (its policy is oldest first).

A real trainer (every default on: console capture, logging, the background writer) logs while
its server is down, so every batch goes to a small spool; halfway it turns its wall clock back an
hour. The spool keeps the newest batches, whatever the clock says.
"""

from __future__ import annotations

import json
from pathlib import Path

from mltrail.sdk.records import decode_metrics
from mltrail.sdk.spool import Spool
from reliability.test_faults import PROCESS_TIMEOUT, expect_line, launch_script, trainer_env
from support.servers import ServerProcess

# The spool keeps the last 5-7 batches of 100 points (their drop warnings, captured as log
# lines, take part of its room), so five or more are dropped; a policy by wall clock would drop
# the 3 batches after the jump (stamped an hour earlier) first and keep older ones. Twelve
# batches, not 30: each flush to the stopped server waits a retry's pause (0.2 s).
BATCHES = 12
SIZE = 100
KEEP_BYTES = 40_000  # room for the last few of the trainer's batches
JUMP_AT = 9


def spooled_iterations(home: Path) -> list[int]:
    """The ``loss`` iterations held by the spool's metric files, in file order."""
    spool = Spool(home / "spool", KEEP_BYTES)
    iterations: list[int] = []
    for path in spool.files():
        body = json.loads(path.read_bytes())
        if body["kind"] == "metrics":
            for chunk in decode_metrics(body).chunks:
                if chunk.key == "loss":  # not the system metrics sampled meanwhile
                    iterations += chunk.iterations.tolist()
    return iterations


def test_a_backward_clock_jump_still_drops_the_oldest_batches_first(
    tmp_path: Path, server: ServerProcess
):
    env = trainer_env(server, tmp_path, MLTRAIL_SPOOL_LIMIT_BYTES=str(KEEP_BYTES))
    proc = launch_script(
        "spool_trainer.py", env, BATCHES, SIZE, "--wait", "--clock-back-at", JUMP_AT
    )
    expect_line(proc, "STARTED")
    server.kill()
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    _, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, err[-2000:]
    assert "dropped the oldest unsent batch" in err

    kept = spooled_iterations(tmp_path)
    newest = BATCHES * SIZE - 1
    print(f"clock back 1 h at batch {JUMP_AT}: spool kept iterations {kept[0]}..{kept[-1]}")
    assert kept == list(range(kept[0], newest + 1)), "the spool kept other than the newest"
    assert 0 < kept[0] < JUMP_AT * SIZE  # older ones dropped; the kept ones span the jump
