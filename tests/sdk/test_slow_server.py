"""A server that drips its answers (tests/support/drip.py) is an outage to the SDK like a dead
one: each request ends at its deadline, the batches go to the spool with the usual warning, and
nothing is lost. Capture and the writer are on, as a user has them (``MLTRAIL_CAPTURE=python``
under pytest's own capture)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import pytest

from mltrail.core.types import LogLine, Status
from mltrail.sdk.experiment import start
from mltrail.sdk.spool import Spool, SpoolWarning, target_of
from mltrail.sdk.sync import replay
from mltrail.sdk.writer import Writer
from mltrail.store.http import HttpStore
from support.drip import drip_server, elapsed


def test_the_writer_spools_a_dripping_servers_batches_and_sync_stores_them(settings, store):
    exp = store.create_experiment(store.create_project("drip").id)
    spool = Spool.from_settings(settings)
    target = target_of(settings)
    with drip_server() as server, HttpStore(server.url, "t", retries=0, deadline=1.0) as slow:
        writer = Writer(
            slow, exp.project_id, exp.experiment_id, spool=spool, target=target, retry_delays=()
        )
        writer.add_points("train", 0, -1, time.time(), {"loss": 1.0})
        writer.add_line(LogLine(time.time(), "stdout", "INFO", "through the drip"))
        start = time.monotonic()
        with pytest.warns(
            SpoolWarning, match=f"unreachable .*{server.url.removeprefix('http://')} was too slow"
        ):
            writer.flush()
        took = elapsed(start)
    assert writer.spooled_batches == 2
    # two batches, one deadline each (the second tries once), and slack for a loaded machine:
    # without deadlines the drip of 4,096 bytes at 0.2 s would hold each for 13 minutes
    assert took < 2 * 1.0 + 10.0
    result = replay(spool, store, target)
    assert (result.sent, result.points, result.lines, result.remaining) == (2, 1, 1, 0)
    p, e = exp.project_id, exp.experiment_id
    assert store.read_series(p, e, "loss", "train").iterations.tolist() == [0]
    assert [line.message for line in store.read_logs(p, e)] == ["through the drip"]


def test_a_run_against_a_dripping_server_starts_offline_ends_and_syncs_elsewhere(
    settings, server, tmp_path
):
    """``MLTRAIL_REQUEST_DEADLINE=1``: start() gives up on the drip after a second and starts
    offline, the run ends without waiting out the drip, and ``mltrail sync --to`` a real
    server creates its experiment with every point."""
    with drip_server() as drip:
        slow = settings.with_(url=drip.url, token="t", strict=False, request_deadline=1.0)
        started = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpoolWarning)
            with start("dripped", "slow", settings=slow) as exp:
                assert exp.experiment_id is None  # offline: the drip never answered
                for step in range(300):
                    exp.log({"loss": 1.0 / (step + 1)})
        took = elapsed(started)
    assert took < 90.0, took  # each request a deadline, not 4,096 drips of 0.2 s (13 minutes)
    assert Spool.from_settings(slow).files()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_HOME": str(settings.home), "MLTRAIL_URL": drip.url}
    env |= {"MLTRAIL_TOKEN": server.admin_token or ""}
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "sync", "--to", server.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "created 1 experiments" in done.stdout, done.stdout
    with HttpStore(server.url, server.admin_token) as check:
        project = check.find_project("dripped")
        assert project is not None
        [record] = check.list_experiments(project.id).items
        series = check.read_series(project.id, record.experiment_id, "loss", "train")
        assert series.iterations.tolist() == list(range(300))
        assert check.get_experiment(project.id, record.experiment_id).status is Status.DONE
