"""The series read routes as the web UI calls them: JSON bodies, wall-clock times."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from mltrail.store.sql import SqlStore
from support.factories import batch, chunk
from support.inprocess import app_client, ok_json

T0 = 1_764_331_200.0


@pytest.fixture
def client(sql_store: SqlStore) -> Iterator[TestClient]:
    project = sql_store.create_project("routes")
    exp = sql_store.create_experiment(project.id)
    for seq, key in enumerate(("loss", "acc")):
        c = chunk(key, range(5000), np.sin(np.arange(5000) / 50.0), t0=T0 + seq)
        sql_store.append_points(project.id, exp.experiment_id, batch(seq, c))
    with app_client(sql_store) as test_client:
        yield test_client


def test_times_are_sent_only_when_asked(client: TestClient) -> None:
    path = "/api/v1/projects/1/experiments/1/series/read"
    plain = ok_json(client.get(path, params={"key": "loss", "max_points": 100}))
    assert "times" not in plain
    timed = ok_json(client.get(path, params={"key": "loss", "max_points": 100, "times": "true"}))
    assert len(timed["times"]) == len(timed["iterations"]) == len(plain["iterations"])
    want = [round(T0 + i * 0.01, 3) for i in timed["iterations"]]  # the factory's 10 ms steps
    assert np.allclose(timed["times"], want, rtol=0, atol=1e-6)
    bad = client.get(path, params={"key": "loss", "times": "sometimes"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "times"


def test_one_request_reads_every_chart_of_a_view(client: TestClient) -> None:
    body = {
        "series": [{"project": 1, "experiment": 1}, {"project": 1, "experiment": 7, "key": "x"}],
        "max_points": 100,
        "times": True,
    }
    answer = ok_json(client.post("/api/v1/series/read", json=body))["series"]
    assert [(a["experiment"], a["key"]) for a in answer] == [(1, "acc"), (1, "loss"), (7, "x")]
    single = ok_json(
        client.get(
            "/api/v1/projects/1/experiments/1/series/read",
            params={"key": "acc", "max_points": 100, "times": "true"},
        )
    )
    assert {k: answer[0][k] for k in single} == single
    assert answer[2]["error"]["type"] == "not_found" and "values" not in answer[2]
    bad = client.post("/api/v1/series/read", json={**body, "series": [{"project": 1}]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "series[0].experiment"
    empty = client.post("/api/v1/series/read", json={**body, "series": []})
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "series"
