"""Stop requests from outside: an exception at the next ``exp.log``, or a callback."""

from __future__ import annotations

import threading
import time

import pytest

from mltrail.core.errors import ExperimentStopped
from mltrail.core.types import Status
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
