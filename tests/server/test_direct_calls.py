"""MLflow calls whose handler takes only the message and the store are answered from a table
(``server/direct.py``), past FastAPI's layers and the routers: each answer is the one the
routers give, and a path is in the table only when the routers would choose its route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.server.direct import DirectCalls, direct_table
from mltrail.store.sql import SqlStore

API = "/api/2.0/mlflow"


def _direct_calls(app: Any) -> DirectCalls:
    layer = app.middleware_stack
    while not isinstance(layer, DirectCalls):
        layer = layer.app
    return layer


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, str]]:
    """Two apps on one database: the first answers from its table, the second's is empty."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'direct.db'}")
    token = store.auth.ensure_admin()
    assert token
    apps = [create_app(Settings(home=tmp_path), store, allowed_hosts=["testserver"]) for _ in "ab"]
    with TestClient(apps[0]) as direct, TestClient(apps[1]) as routed:
        routed.get(f"{API}/experiments/search")  # builds its middleware stack and mounts
        _direct_calls(apps[1]).table = {}
        yield direct, routed, token
    store.close()


def _answer(client: TestClient, method: str, path: str, token: str | None, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, bytes):
        answer = client.request(method, path, content=body, headers=headers)
    else:
        answer = client.request(method, path, json=body, headers=headers)
    return answer.status_code, answer.json(), answer.headers.get("www-authenticate")


def test_direct_answers_are_the_routers_answers(clients) -> None:
    direct, routed, token = clients
    made = direct.post(f"{API}/experiments/create", json={"name": "d"},
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    exp = made.json()["experiment_id"]
    run = direct.post(f"{API}/runs/create", json={"experiment_id": exp},
                      headers={"Authorization": f"Bearer {token}"}).json()["run"]["info"]  # fmt: skip
    point = {"run_id": run["run_id"], "key": "loss", "value": 0.5, "timestamp": 1, "step": 2}
    calls: list[tuple[str, str, str | None, Any]] = [
        ("POST", f"{API}/runs/log-metric", token, point),
        ("POST", f"{API}/runs/log-metric", token, {**point, "value": "high"}),
        ("POST", f"{API}/runs/log-metric", None, point),
        ("POST", f"{API}/runs/log-metric", "mlt_unknown", point),
        ("POST", f"{API}/runs/log-metric", token, b"{not json"),
        ("POST", f"{API}/runs/log-batch", token, {"run_id": run["run_id"], "metrics": [point]}),
        ("POST", f"{API}/runs/log-batch", token, {"run_id": run["run_id"], "metrics": {}}),
        ("POST", f"{API}/runs/search", token, {"experiment_ids": [exp], "max_results": 0}),
        ("POST", f"{API}/runs/search", token, {"experiment_ids": [exp]}),
        ("POST", f"{API}/no/such/call", token, {}),
    ]
    for method, path, key, body in calls:
        expected = _answer(routed, method, path, key, body)
        assert _answer(direct, method, path, key, body) == expected, (path, body)
    # a streamed body over the anonymous limit: the body limit's 413, not a 500 (its receive
    # raises inside the handler, as the route's wrapper answered it)
    big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    for client in (direct, routed):
        answer = client.post(f"{API}/runs/log-batch", content=iter([big[:1000], big[1000:]]))
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"]["field"] == "body"
    assert _direct_calls(routed.app).table == {}  # every answer above was the routers'
    table = _direct_calls(direct.app).table
    assert table is not None
    for prefix in (API, "/ajax-api/2.0/mlflow"):
        for call in ("runs/log-metric", "runs/log-batch", "runs/search"):
            assert ("POST", f"{prefix}/{call}") in table
    # a route with a parameter in its path is the routers' alone
    assert table and not any("{" in path for _, path in table)
    history = direct.get(f"{API}/metrics/get-history", params={"run_id": run["run_id"],
                         "metric_key": "loss"}, headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    # each app stored the good log-metric and log-batch it was sent: four points
    assert [(m["key"], m["value"], m["step"]) for m in history.json()["metrics"]] == [
        ("loss", 0.5, 2)
    ] * 4


async def _direct(request: Any) -> PlainTextResponse:
    return PlainTextResponse("direct")


def _route(path: str, methods: list[str], direct: bool) -> Route:
    route = Route(path, _direct, methods=methods)
    route.direct_handler = _direct if direct else None  # type: ignore[attr-defined]
    return route


def test_a_path_is_direct_only_when_the_routers_would_choose_its_route() -> None:
    shadowing = Mount(
        "/m", routes=[_route("/{name}", ["POST"], False), _route("/a", ["POST"], True)]
    )
    assert direct_table([shadowing]) == {}  # the parameter route comes first and matches
    other_method = Mount(
        "/m", routes=[_route("/{name}", ["GET"], False), _route("/a", ["POST"], True)]
    )
    assert list(direct_table([other_method])) == [("POST", "/m/a")]
    earlier = Route("/m/a", _direct, methods=["POST"])  # an app route ahead of the mount
    assert direct_table([earlier, other_method]) == {}
    first = Mount("/m", routes=[_route("/a", ["POST"], True), _route("/a", ["POST"], True)])
    table = direct_table([first])
    assert table[("POST", "/m/a")] is first.routes[0].direct_handler  # type: ignore[attr-defined]
