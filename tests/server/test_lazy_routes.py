"""The /api/v1, MissingLink and UI routes are added on the first request that needs them: a
fresh app answers them and describes them whatever the MLflow client asked before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.store.sql import SqlStore


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'lazy.db'}")
    token = store.auth.ensure_admin()
    assert token
    app = create_app(Settings(home=tmp_path), store, allowed_hosts=["testserver"])
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}
    store.close()


def test_the_schema_lists_the_api_when_it_is_the_first_request(fresh) -> None:
    client, _ = fresh
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/projects" in paths
    assert "/healthz" in paths


def test_the_api_answers_after_mlflow_and_health_requests(fresh) -> None:
    client, auth = fresh
    assert client.get("/healthz").status_code == 200
    made = client.post("/api/2.0/mlflow/experiments/create", json={"name": "e"}, headers=auth)
    assert made.status_code == 200, made.text
    projects = client.get("/api/v1/projects", headers=auth)
    assert projects.status_code == 200, projects.text
    assert "e" in projects.text
    assert client.get("/api/v1/projects").status_code == 401  # still behind the token check
