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


def test_an_include_that_fails_is_retried_by_the_next_request() -> None:
    """The flag was cleared before including: one failed import and the routes were never
    added, every later request a 404."""
    from fastapi import FastAPI

    from mltrail.server.app import IncludeOnFirstUse

    app = FastAPI()
    attempts: list[int] = []

    def include() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ImportError("a module failed to import")
        app.add_api_route("/late", lambda: {"ok": True})

    app.add_middleware(IncludeOnFirstUse, include=include, skip=lambda path: False)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/late").status_code == 500
        assert client.get("/late").json() == {"ok": True}
        assert client.get("/late").status_code == 200
    assert len(attempts) == 2  # run again once, then never
