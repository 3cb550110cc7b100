"""Stop requests from outside, and console capture that leaves the console unchanged."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time

import pytest

from mltrail.core.errors import ExperimentStopped
from mltrail.core.types import LogLine, Status
from mltrail.sdk.console import ConsoleCapture
from mltrail.sdk.experiment import start


def test_stop_request_raises_in_log_and_ends_stopped(settings, store):
    iterations = 0
    with start("stoppable", settings=settings, stop_poll_seconds=0.05) as exp:
        store.request_stop(exp.project_id, exp.experiment_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            exp.log({"loss": 1.0})
            iterations += 1
            time.sleep(0.01)
        pytest.fail("ExperimentStopped was never raised")
    record = store.get_experiment(exp.project_id, exp.experiment_id)
    assert record.status is Status.STOPPED
    # the call that raised still recorded its point
    assert store.list_series(exp.project_id, exp.experiment_id)[0].count == iterations + 1


def test_stop_request_calls_on_stop_instead(settings, store):
    seen = threading.Event()
    with start("callback", settings=settings, on_stop=seen.set, stop_poll_seconds=0.05) as exp:
        store.request_stop(exp.project_id, exp.experiment_id)
        assert seen.wait(10)
        exp.log({"loss": 1.0})  # no exception with a callback
        assert exp.stop_requested
    assert store.get_experiment(exp.project_id, exp.experiment_id).status is Status.STOPPED


def test_stop_outside_a_with_block_raises_experiment_stopped(settings, store):
    exp = start("plain", settings=settings, stop_poll_seconds=0.05)
    store.request_stop(exp.project_id, exp.experiment_id)
    with pytest.raises(ExperimentStopped):
        for _ in range(1000):
            exp.log({"loss": 1.0})
            time.sleep(0.01)
    exp.end()
    assert store.get_experiment(exp.project_id, exp.experiment_id).status is Status.STOPPED


def test_console_capture_tees_lines_and_restores(monkeypatch):
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    lines: list[LogLine] = []
    capture = ConsoleCapture(lines.append, clock=lambda: 42.0).start()
    print("hello", "world")
    sys.stdout.write("partial ")
    sys.stdout.write("line\nprogress 10%\rprogress 100%\n")
    print("oops", file=sys.stderr)
    logging.getLogger("data.loader").error("bad shard %d", 7)
    sys.stdout.write("no newline at the end")
    capture.stop()
    assert sys.stdout is out and sys.stderr is err
    assert out.getvalue() == (
        "hello world\npartial line\nprogress 10%\rprogress 100%\nno newline at the end"
    )
    assert err.getvalue() == "oops\n"
    got = [(ln.stream, ln.level, ln.message) for ln in lines]
    assert got == [
        ("stdout", "INFO", "hello world"),
        ("stdout", "INFO", "partial line"),
        ("stdout", "INFO", "progress 100%"),
        ("stderr", "WARNING", "oops"),
        ("data.loader", "ERROR", "bad shard 7"),
        ("stdout", "INFO", "no newline at the end"),
    ]
    assert lines[0].time == 42.0


def test_capture_console_false_leaves_streams_alone(settings, store):
    original = sys.stdout
    with start("quiet", settings=settings.with_(capture_console=False)) as exp:
        assert sys.stdout is original
        print("not captured")
    assert store.read_logs(exp.project_id, exp.experiment_id) == []


def test_mltrail_own_log_records_are_not_captured():
    lines: list[LogLine] = []
    capture = ConsoleCapture(lines.append).start()
    try:
        logging.getLogger("mltrail.sdk").error("internal")
        logging.getLogger("user").error("external")
    finally:
        capture.stop()
    assert [ln.message for ln in lines if ln.stream != "stderr"] == ["external"]
