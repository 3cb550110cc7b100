"""Each surface is added on the first request that needs it (/api/v1 with the UI, MLflow's,
MissingLink's): a fresh app answers each and describes /api/v1 whatever was asked before, and
a server the SDK alone talks to never imports the other two."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Mount
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
    # declared without a response model (pydantic.v1 stays unimported), described as with one
    health = paths["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]
    assert health["schema"] == {"additionalProperties": {"type": "string"}, "type": "object",
                                "title": "Response Healthz Healthz Get"}  # fmt: skip


def test_the_api_answers_after_mlflow_and_health_requests(fresh) -> None:
    client, auth = fresh
    assert client.get("/healthz").status_code == 200
    made = client.post("/api/2.0/mlflow/experiments/create", json={"name": "e"}, headers=auth)
    assert made.status_code == 200, made.text
    projects = client.get("/api/v1/projects", headers=auth)
    assert projects.status_code == 200, projects.text
    assert "e" in projects.text
    assert client.get("/api/v1/projects").status_code == 401  # still behind the token check


def test_mlflow_and_missinglink_answer_after_the_api(fresh) -> None:
    client, auth = fresh
    made = client.post("/api/v1/projects", json={"display_name": "first"}, headers=auth)
    assert made.status_code in (200, 201), made.text
    found = client.get(
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=first", headers=auth
    )
    assert found.status_code == 200, found.text
    assert found.json()["experiment"]["name"] == "first"
    unknown = client.get("/api/2.0/mlflow/no/such/call", headers=auth)
    assert unknown.status_code == 404
    assert unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"  # MLflow's shape
    token = auth["Authorization"].removeprefix("Bearer ")
    refreshed = client.post(
        "/_ah/api/missinglink/v1/users/refresh_token", json={"refresh_token": token}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["id_token"]
    unserved = client.get("/_ah/api/missinglink/v1/no/such/call", headers=auth)
    assert unserved.status_code == 404
    assert "not served" in unserved.text  # MissingLink's JSON 404, not the web UI's page
    assert client.get("/projects/1").headers["content-type"].startswith("text/html")  # the UI


def test_the_mounts_come_before_the_api_routes(fresh) -> None:
    """MLflow's requests test one prefix each, never every /api/v1 route (issue 14)."""
    client, auth = fresh
    assert client.get("/api/v1/projects", headers=auth).status_code == 200
    client.get("/api/2.0/mlflow/experiments/search?max_results=1", headers=auth)
    client.get("/_ah/api/missinglink/v1/no/such/call", headers=auth)
    routes = client.app.router.routes  # type: ignore[attr-defined]
    mounts = [i for i, route in enumerate(routes) if isinstance(route, Mount)]
    assert len(mounts) == 5  # two MLflow tracking prefixes, two artifact ones, MissingLink
    assert mounts == list(range(5))


def test_a_server_the_sdk_talks_to_imports_neither_other_surface() -> None:
    code = (
        "import sys, mltrail.cli.server, mltrail.server.app; "
        "print(sorted(m for m in sys.modules if m.startswith('mltrail.server.') and "
        "m.split('.')[2] in ('mlflow', 'missinglink')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "['mltrail.server.missinglink', 'mltrail.server.mlflow']"


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


def _surface_calls() -> list[tuple[str, str]]:
    """(method, path) of every route of the two lazily mounted surfaces, under each prefix."""
    from mltrail.server import missinglink, mlflow
    from mltrail.server.missinglink import experiments, logs
    from mltrail.server.missinglink import routers as missinglink_routers
    from mltrail.server.mlflow.routers import mlflow_artifacts_router, mlflow_router

    calls = []
    for prefixes, router in ((mlflow.PREFIXES, mlflow_router()),
                             (mlflow.ARTIFACT_PREFIXES, mlflow_artifacts_router())):  # fmt: skip
        calls += [(m, p + r.path) for r in router.routes for p in prefixes for m in r.methods]
    parts = (missinglink_routers._users, experiments.router, logs.router,
             missinglink_routers._unserved)  # fmt: skip
    calls += [(m, missinglink.PREFIX + r.path) for part in parts for r in part.routes
              for m in r.methods]  # fmt: skip
    return calls


# answered without a token by design: the exchange of an API token for an id_token, and the
# JSON 404 naming a MissingLink call mltrail does not serve
_TOKENLESS = {"/_ah/api/missinglink/v1/users/refresh_token": 400,
              "/_ah/api/missinglink/v1/{path:path}": 404}  # fmt: skip


@pytest.mark.parametrize("first", ["/api/2.0/mlflow/x", "/_ah/api/missinglink/v1/x", "/api/v1/x"])
def test_no_route_of_a_lazily_mounted_surface_answers_without_a_token(fresh, first) -> None:
    """Whichever surface a fresh server mounts first, every MLflow and MissingLink route asks
    for a token (routes mounted on first use are in no list taken at start)."""
    client, _ = fresh
    client.get(first)
    calls = _surface_calls()
    assert len(calls) > 60
    for method, path in calls:
        url = re.sub(r"\{[^}]+\}", "1", path)
        answer = client.request(
            method, url, content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == _TOKENLESS.get(path, 401), (method, path, answer.text)


_SDK_RUN = """
import re
import sys
from starlette.testclient import TestClient
from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.store.sql import SqlStore

def sdk_run(url, everything_first):
    store = SqlStore.open(url)
    auth = {"Authorization": f"Bearer {store.auth.ensure_admin()}"}
    run = "/api/v1/projects/1/experiments/1"
    with TestClient(create_app(Settings(), store, allowed_hosts=["testserver"])) as client:
        if everything_first:
            client.get("/api/v1/openapi.json")
        answers = [
            client.get("/api/v1/projects", headers=auth),
            client.post("/api/v1/projects", json={"display_name": "p"}, headers=auth),
            client.post("/api/v1/projects/1/experiments", json={}, headers=auth),
            client.get("/api/v1/identity", headers=auth),
            client.post(run + "/heartbeat", headers=auth),
            client.post(run + "/points", json={"client_id": "c", "seq": 0, "chunks": []},
                        headers=auth),
            client.post(run + "/logs", json={"client_id": "c", "seq": 0, "lines": []},
                        headers=auth),
            client.get(run + "/series/read?key=loss", headers=auth),
            client.patch(run, json={"status": "done"}, headers=auth),
        ]
    store.close()
    # times and the store's id told apart
    return [(a.status_code, re.sub(r"[0-9a-f]{32}|[0-9]+[.][0-9]+", "#", a.text)) for a in answers]

lazy = sdk_run(sys.argv[1], everything_first=False)
print(sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("mltrail.server.routes.")))
print(lazy == sdk_run(sys.argv[2], everything_first=True))
"""


def test_a_server_the_sdk_talks_to_imports_only_the_nouns_its_runs_call(tmp_path: Path) -> None:
    """An SDK run's calls are answered by the first nouns, as a server with every noun
    answers them: the others and the UI (1.2 MB) are imported only by a request none of
    those answers, the OpenAPI schema being one."""
    from mltrail.server.app import FIRST_NOUNS

    urls = [f"sqlite:///{tmp_path / name}" for name in ("lazy.db", "eager.db")]
    found = subprocess.run([sys.executable, "-c", _SDK_RUN, *urls], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert found.returncode == 0, found.stderr
    nouns, same = found.stdout.splitlines()
    assert nouns == str(sorted(FIRST_NOUNS))
    assert same == "True"  # the same answers as when every noun was there


_MLFLOW_RUN = """
import sys
from starlette.testclient import TestClient
from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.store.blobs import open_blobs
from mltrail.store.sql import SqlStore

store = SqlStore.open(sys.argv[1], blobs=open_blobs(sys.argv[2]))
auth = {"Authorization": f"Bearer {store.auth.ensure_admin()}"}
api, files = "/api/2.0/mlflow", "/api/2.0/mlflow-artifacts/artifacts/1/1-1/artifacts"
point = {"key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
with TestClient(create_app(Settings(), store, allowed_hosts=["testserver"])) as client:
    answers = [
        client.get("/healthz"),
        client.post(api + "/experiments/create", json={"name": "e"}, headers=auth),
        client.post(api + "/runs/create", json={"experiment_id": "1"}, headers=auth),
        client.post(api + "/runs/log-batch", json={"run_id": "1-1", "metrics": [point]},
                    headers=auth),
        client.get(api + "/metrics/get-history?run_id=1-1&metric_key=loss", headers=auth),
        client.get(api + "/logged-models/m-1", headers=auth),
        client.put(files + "/a.txt", content=b"bytes", headers=auth),
        client.get(files + "/a.txt", headers=auth),
        client.delete(files + "/a.txt", headers=auth),
        client.get(api + "/no/such/call", headers=auth),
    ]
store.close()
print([a.status_code for a in answers])
print(sorted(m for m in sys.modules if m.startswith(("mltrail.server.routes.", "pydantic.v1"))
             or m == "mltrail.server.schemas"))
"""


def test_a_server_mlflow_clients_talk_to_imports_no_api_route_nor_pydantic_v1(
    tmp_path: Path,
) -> None:
    """Neither /api/v1's routes and their response models (1 MiB) nor pydantic.v1 (1.5 MiB,
    which FastAPI imports to rule out a route's response model or plain parameter being one of
    its models) are imported by the MLflow surface, its artifact proxy included."""
    argv = [sys.executable, "-c", _MLFLOW_RUN, f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path)]
    found = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    statuses, modules = found.stdout.splitlines()
    assert statuses == str([200, 200, 200, 200, 200, 400, 200, 200, 200, 404])  # 400: no such model
    assert modules == "[]"


def test_a_later_noun_and_the_ui_answer_after_the_first_nouns(fresh) -> None:
    client, auth = fresh
    assert client.get("/api/v1/projects", headers=auth).status_code == 200  # the first nouns
    users = client.get("/api/v1/me", headers=auth)
    assert users.status_code == 200, users.text
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/projects/1").headers["content-type"].startswith("text/html")
    assert client.get("/api/v1/no/such/thing", headers=auth).status_code == 404
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/me" in paths and "/api/v1/projects" in paths


def test_the_requests_found_answered_are_remembered_within_a_bound() -> None:
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mltrail.server.app import REMEMBERED_REQUESTS, AnsweredBy

    answered = AnsweredBy()
    answered.routes.append(Route("/runs/{n:int}", PlainTextResponse, methods=["POST"]))

    def request(method: str, path: str) -> dict[str, str]:
        return {"type": "http", "method": method, "path": path, "root_path": ""}

    assert all(answered(request("POST", f"/runs/{n}")) for n in range(REMEMBERED_REQUESTS * 2))
    assert answered(request("POST", "/runs/1"))
    assert len(answered._answered) <= REMEMBERED_REQUESTS
    assert not answered(request("GET", "/runs/1"))  # the path alone: not answered
    assert not answered(request("POST", "/runs/x"))
