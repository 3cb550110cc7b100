"""Values survive HTTP exactly (NaN, infinities, types) and logs can be followed live."""

from __future__ import annotations

import math
import threading
import time

import httpx
import numpy as np
import pytest

from mltrail.core import validation
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk, Status
from support.servers import unique_name


@pytest.fixture
def user(shared_server, http_store_factory):
    token = shared_server.make_token(unique_name())
    return http_store_factory(shared_server.url, token), token


def _experiment(store, **fields):
    project = store.create_project("roundtrip")
    return project.id, store.create_experiment(project.id, **fields).experiment_id


def test_non_finite_values_round_trip_bit_exact(user):
    store, _ = user
    p, e = _experiment(store)
    values = np.array([0.5, np.nan, np.inf, -np.inf, -0.0, 1e308, 5e-324])
    n = len(values)
    chunk = SeriesChunk("loss", "train", np.arange(n), np.full(n, -1), values, np.full(n, 1.5))
    assert store.append_points(p, e, MetricBatch("c", 1, (chunk,))) == n
    series = store.read_series(p, e, "loss", "train")
    assert series.values.tobytes() == values.tobytes()
    assert series.epochs.tolist() == [-1] * n
    summary = store.list_series(p, e)[0]
    assert math.isinf(summary.max) and summary.count == n


def test_series_read_sends_tagged_floats_and_null_epochs(user, shared_server):
    store, token = user
    p, e = _experiment(store)
    chunk = SeriesChunk(
        "acc",
        "validation",
        np.arange(3),
        np.array([-1, 0, 1]),
        np.array([1.0, np.nan, 2.0]),
        np.ones(3),
    )
    store.append_points(p, e, MetricBatch("c", 1, (chunk,)))
    response = httpx.get(
        f"{shared_server.url}/api/v1/projects/{p}/experiments/{e}/series/read",
        params={"key": "acc", "phase": "validation"},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert body["values"] == [1.0, {"$float": "NaN"}, 2.0]
    assert body["epochs"] == [None, 0, 1]
    assert (body["total"], body["downsampled"]) == (3, False)


def test_typed_values_round_trip(user):
    store, _ = user
    hparams = {"lr": float("nan"), "layers": [64, float("inf")], "name": "x", "flag": True}
    p, e = _experiment(store, hyperparameters=hparams, tags=["a", "b"])
    metrics = {"ex_nan": float("nan"), "ex_int": 3, "ex_float": 3.0, "ex_bool": False, "ex_s": "3"}
    store.put_external_metrics([store.get_experiment(p, e).ref], metrics)
    got = store.get_experiment(p, e)
    assert math.isnan(got.hyperparameters["lr"]) and got.hyperparameters["layers"][1] == math.inf
    assert got.tags == ("a", "b")
    ex = got.ex_metrics
    assert math.isnan(ex.pop("ex_nan"))
    assert ex == {"ex_int": 3, "ex_float": 3.0, "ex_bool": False, "ex_s": "3"}
    assert [type(ex[k]) for k in ("ex_int", "ex_float", "ex_bool")] == [int, float, bool]


def test_multi_line_chart_round_trips(user):
    store, _ = user
    p, e = _experiment(store)
    spec = validation.chart(
        "pr", chart_x='["a", "b"]', chart_y="[[1, NaN], [3, 4]]", chart_y_name='["p", "r"]'
    )
    ref = store.get_experiment(p, e).ref
    store.put_chart([ref], spec)
    store.put_chart([ref], spec)  # same name: replaced, not duplicated
    [chart] = store.list_charts(p, e)
    assert chart.spec.y_names == ("p", "r") and chart.spec.x == ("a", "b")
    assert math.isnan(chart.spec.y[0][1]) and chart.spec.y[1] == (3.0, 4.0)


def _log(store, p, e, seq, message):
    line = LogLine(time.time(), "stdout", "INFO", message)
    return store.append_logs(p, e, LogBatch("writer", seq, (line,)))


def test_log_appends_are_idempotent_and_ordered(user):
    store, _ = user
    p, e = _experiment(store)
    assert _log(store, p, e, 1, "one") == 1
    assert _log(store, p, e, 1, "one") == 0
    _log(store, p, e, 2, "two")
    assert [(x.seq, x.message) for x in store.read_logs(p, e)] == [(1, "one"), (2, "two")]
    assert [x.message for x in store.read_logs(p, e, after_seq=1)] == ["two"]


def test_long_poll_returns_as_soon_as_a_line_arrives(user):
    store, _ = user
    p, e = _experiment(store)
    timer = threading.Timer(0.5, _log, (store, p, e, 1, "late line"))
    timer.start()
    started = time.monotonic()
    tail = store.tail_logs(p, e, after_seq=0, wait=20)
    elapsed = time.monotonic() - started
    timer.join()
    assert [x.message for x in tail.lines] == ["late line"]
    assert tail.status is Status.RUNNING and not tail.ended
    assert elapsed < 15  # woke up on the line, not at the deadline


def test_long_poll_on_an_ended_experiment_does_not_wait(user):
    store, _ = user
    p, e = _experiment(store)
    store.update_experiment(p, e, status=Status.DONE)
    started = time.monotonic()
    tail = store.tail_logs(p, e, after_seq=0, wait=20)
    assert (tail.lines, tail.status, tail.ended) == ((), Status.DONE, True)
    assert time.monotonic() - started < 15


def test_log_stream_sends_lines_then_ends(user, shared_server):
    store, token = user
    p, e = _experiment(store)
    _log(store, p, e, 1, "first")

    def finish():
        _log(store, p, e, 2, "<b>second</b>")
        store.update_experiment(p, e, status=Status.FAILED)

    timer = threading.Timer(0.7, finish)
    timer.start()
    url = f"{shared_server.url}/api/v1/projects/{p}/experiments/{e}/logs/stream"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    timer.join()
    events = [block for block in text.split("\n\n") if block.strip()]
    assert events[0].startswith("id: 1\nevent: line\ndata: ")
    assert '"message":"first"' in events[0]
    assert '"message":"<b>second</b>"' in events[1]
    assert events[-1] == 'event: end\ndata: {"status":"failed","last_heartbeat":null}'


def test_log_stream_resumes_after_last_event_id(user, shared_server):
    store, token = user
    p, e = _experiment(store)
    for seq, message in ((1, "a"), (2, "b")):
        _log(store, p, e, seq, message)
    store.update_experiment(p, e, status=Status.DONE)
    url = f"{shared_server.url}/api/v1/projects/{p}/experiments/{e}/logs/stream"
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": "1"}
    text = httpx.get(url, headers=headers, timeout=30).text
    assert '"message":"b"' in text and '"message":"a"' not in text
