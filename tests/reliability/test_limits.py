"""Over-long keys, chart labels and log lines at a real server: 422 naming the field, or the
documented truncation (log lines over 65,536 characters keep a marker saying how much was cut).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mltrail.core import series_codec
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk
from mltrail.core.validation import MAX_KEY_LEN, MAX_LOG_MESSAGE_LEN
from mltrail.store.http import HttpStore
from support.clients import error_of, rest_client
from support.servers import ServerProcess, unique_name


@pytest.fixture
def client(shared_server: ServerProcess):
    token = shared_server.make_token(unique_name("limits"))
    store = HttpStore(shared_server.url, token)
    project = store.create_project("limits")
    exp = store.create_experiment(project.id)
    with rest_client(shared_server.url, token) as http:
        yield http, store, f"/projects/{project.id}/experiments/{exp.experiment_id}", exp
    store.close()


_error = error_of


def test_a_metric_key_over_the_limit_is_422(client):
    http, _, path, _ = client
    n = 3
    chunk = SeriesChunk("k" * (MAX_KEY_LEN + 1), "train", np.arange(n), np.full(n, -1),
                        np.ones(n), np.ones(n))  # fmt: skip
    body = series_codec.metric_batch_to_wire(MetricBatch("c", 1, (chunk,)))
    error = _error(http.post(path + "/points", json=body))
    assert "key" in error["field"] and str(MAX_KEY_LEN) in error["message"]
    ok = SeriesChunk("k" * MAX_KEY_LEN, "train", np.arange(n), np.full(n, -1), np.ones(n),
                     np.ones(n))  # fmt: skip
    body = series_codec.metric_batch_to_wire(MetricBatch("c", 2, (ok,)))
    assert http.post(path + "/points", json=body).status_code == 200


@pytest.mark.parametrize(
    ("label", "field"),
    [("name", "chart_name"), ("x_name", "chart_x_name"), ("y_names", "chart_y_name")],
)
def test_chart_labels_over_the_limit_are_422_naming_them(client, label, field):
    http, _, _, exp = client
    spec = {"name": "c", "x_name": "x", "y_names": "y", "x": [1, 2], "y": [1.0, 2.0]}
    spec[label] = "L" * (MAX_KEY_LEN + 1)
    targets = [{"project_id": exp.project_id, "experiment_id": exp.experiment_id}]
    error = _error(http.post("/charts", json={"targets": targets, "chart": spec}))
    assert field in error["field"], error


def test_an_ex_metric_key_over_the_limit_is_422(client):
    http, _, _, exp = client
    targets = [{"project_id": exp.project_id, "experiment_id": exp.experiment_id}]
    body = {"targets": targets, "metrics": json.dumps({"ex_" + "m" * MAX_KEY_LEN: 1})}
    error = _error(http.post("/external-metrics", json=body))
    assert error["field"].startswith("metrics"), error


def test_a_log_line_over_the_limit_is_truncated_with_a_marker(client):
    _, store, _, exp = client
    long_line = "x" * (MAX_LOG_MESSAGE_LEN + 1000)
    batch = LogBatch("c", 1, (LogLine(1.0, "stdout", "INFO", long_line),))
    store.append_logs(exp.project_id, exp.experiment_id, batch)
    [line] = store.read_logs(exp.project_id, exp.experiment_id)
    assert line.message.startswith("x" * 1000) and len(line.message) < len(long_line)
    assert "1000" in line.message[MAX_LOG_MESSAGE_LEN - 100 :]  # says how much was cut
