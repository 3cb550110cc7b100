"""POST .../points: a batch with plain ids is handled without FastAPI's dependency solving
(routes/points.py's PointsRoute), answering as FastAPI's own handler does; any other id goes
through FastAPI's handler and its validation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.routing import APIRoute
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.core.chunk_codec import pack_chunks
from mltrail.core.series_codec import POINTS_MEDIA_TYPE, metric_batch_to_packed
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.server import create_app
from mltrail.server.deps import MAX_INT64
from mltrail.server.routes import points
from mltrail.store.sql import SqlStore


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'points.db'}")
    token = store.auth.ensure_admin()
    assert token
    app = create_app(Settings(home=tmp_path), store, allowed_hosts=["testserver"])
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {token}"}
        project = client.post("/api/v1/projects", json={"display_name": "p"}, headers=auth)
        pid = project.json()["id"]
        made = client.post(f"/api/v1/projects/{pid}/experiments", json={}, headers=auth)
        eid = made.json()["experiment_id"]
        yield client, auth, f"/api/v1/projects/{pid}/experiments/{eid}"
    store.close()


def _body(seq: int, n: int = 40) -> bytes:
    iterations = np.arange(n, dtype=np.int64) + 100 * seq
    chunk = SeriesChunk("loss", "train", iterations, np.full(n, -1, np.int64),
                        np.linspace(0.0, 1.0, n), 1.7e9 + iterations * 0.5)  # fmt: skip
    return metric_batch_to_packed(MetricBatch("c" * 32, seq, tuple(pack_chunks([chunk]))))


def _post(client: TestClient, path: str, body: bytes, auth: dict[str, str]) -> object:
    headers = {"Content-Type": POINTS_MEDIA_TYPE, **auth}
    return client.post(path + "/points", content=body, headers=headers)


def test_the_points_route_is_a_points_route(api) -> None:
    client, auth, experiment = api
    assert _post(client, experiment, _body(1), auth).status_code == 200  # the API included
    found = [
        r for r in _routes(client.app) if r.path.endswith("/experiments/{experiment_id}/points")
    ]
    assert found and all(isinstance(r, points.PointsRoute) for r in found)


def _routes(app: object) -> Iterator[APIRoute]:
    for route in getattr(app, "routes", None) or getattr(
        getattr(app, "router", None), "routes", []
    ):
        if isinstance(route, APIRoute):
            yield route
        for inner in (getattr(route, "app", None), getattr(route, "original_router", None)):
            if inner is not None and inner is not app:
                yield from _routes(inner)


def test_a_batch_is_stored_once_and_answered_as_json(api) -> None:
    client, auth, experiment = api
    first = _post(client, experiment, _body(1), auth)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.content == b'{"stored":40}'
    assert _post(client, experiment, _body(1), auth).json() == {"stored": 0}  # a retry
    series = client.get(experiment + "/series", headers=auth).json()
    assert [(s["key"], s["count"]) for s in series] == [("loss", 40)]


def test_a_bad_token_stores_nothing(api) -> None:
    client, auth, experiment = api
    refused = _post(client, experiment, _body(1), {"Authorization": "Bearer mlt_not_a_token"})
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    assert client.get(experiment + "/series", headers=auth).json() == []


@pytest.mark.parametrize("bad", ["0", "01", "-1", str(MAX_INT64 + 1), "x"])
def test_an_id_fastapi_refuses_is_its_422(api, bad: str) -> None:
    client, auth, experiment = api
    answer = _post(client, experiment.rsplit("/", 1)[0] + "/" + bad, _body(1), auth)
    if bad == "01":  # FastAPI reads it as 1: the same experiment, through its own handler
        assert answer.status_code == 200, answer.text
        return
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["type"] == "validation_error"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1), ("42", 42), (str(MAX_INT64), MAX_INT64), ("0", None), ("01", None),
     (str(MAX_INT64 + 1), None), ("-3", None), ("\u0663", None), ("", None), (None, None)],
)  # fmt: skip
def test_plain_ids(text: object, value: int | None) -> None:
    assert points._plain_id(text) == value
