"""A URL that does not decode to UTF-8 text exactly is a 400 naming the parameter on every
route of every surface, token or not (server/url_guard.py); before, ``?name=%FF`` reached the
route as ``"\\ufffd"``. Over real HTTP against the session's shared server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from mltrail.server import missinglink, mlflow
from mltrail.server.missinglink.routers import missinglink_router
from mltrail.server.mlflow.routers import mlflow_artifacts_router, mlflow_router
from mltrail.server.ui import ui_router
from mltrail.server.url_guard import path_problem, query_problem
from support.servers import ServerProcess, unique_name

BAD_QUERIES = {
    "%FF": "not UTF-8",  # a byte no UTF-8 text has
    "%C3%28": "not UTF-8",  # a lead byte whose continuation is missing
    "%ED%A0%80": "not UTF-8",  # a lone surrogate, encoded
    "%G1": "not a percent-escape",
    "100%": "not a percent-escape",
}


def _routes() -> Iterator[tuple[str, str, str]]:
    """``(surface, method, path template)`` of every route but /api/v1's (from the OpenAPI)."""
    surfaces = [("mlflow", p, mlflow_router()) for p in mlflow.PREFIXES]
    surfaces += [("mlflow", p, mlflow_artifacts_router()) for p in mlflow.ARTIFACT_PREFIXES]
    surfaces += [("missinglink", missinglink.PREFIX, missinglink_router()), ("ui", "", ui_router)]
    for surface, prefix, router in surfaces:
        for context in iter_route_contexts(router.routes):
            for method in sorted(getattr(context.original_route, "methods", ()) or ()):
                yield surface, method, prefix + str(context.path)


@pytest.fixture(scope="module")
def every_route(shared_server: ServerProcess) -> list[tuple[str, str, str]]:
    spec = httpx.get(shared_server.url + "/api/v1/openapi.json").json()
    rest = [
        ("api", method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method.upper() != "HEAD"
    ]
    others = [route for route in _routes() if route[1] != "HEAD"]
    # a walk that found no routes of a surface would prove nothing
    assert {s for s, _, _ in rest + others} == {"api", "mlflow", "missinglink", "ui"}
    assert len(rest) > 40 and len(others) > 40
    return rest + others


def _field_of(surface: str, response: httpx.Response) -> str:
    """The field a 400 names, in the surface's error shape; every message starts with it."""
    assert response.status_code == 400, response.text
    body = response.json()
    if surface == "mlflow":
        assert body["error_code"] == "INVALID_PARAMETER_VALUE", body
        return str(body["message"]).split(":")[0]
    assert body["error"]["type"] == "validation_error", body
    assert body["error"]["message"].startswith(body["error"]["field"] + ": "), body
    return str(body["error"]["field"])


def test_every_route_refuses_a_query_value_that_is_not_utf8(shared_server, every_route):
    """Without a token: the check comes before any token check, body read or route."""
    wrong = []
    with httpx.Client(base_url=shared_server.url, timeout=10) as client:
        for surface, method, template in every_route:
            path = re.sub(r"\{[^}]+\}", "1", template)
            response = client.request(method, path + "?probe=%FF&other=ok")
            assert response.request.url.raw_path.endswith(b"?probe=%FF&other=ok")
            if response.status_code != 400 or _field_of(surface, response) != "probe":
                wrong.append((method, template, response.status_code, response.text[:200]))
    assert wrong == []


def test_every_route_refuses_a_path_segment_that_is_not_utf8(shared_server, every_route):
    wrong = []
    with httpx.Client(base_url=shared_server.url, timeout=10) as client:
        for surface, method, template in every_route:
            if "{" not in template:
                continue
            path = re.sub(r"\{[^}]+\}", "%FF", template, count=1)
            path = re.sub(r"\{[^}]+\}", "1", path)
            response = client.request(method, path)
            assert b"%FF" in response.request.url.raw_path
            if response.status_code != 400 or _field_of(surface, response) != "path":
                wrong.append((method, template, response.status_code, response.text[:200]))
    assert wrong == []


@pytest.mark.parametrize("value", sorted(BAD_QUERIES))
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects",
        "/api/2.0/mlflow/experiments/get-by-name",
        "/ajax-api/2.0/mlflow/experiments/search",
        f"{missinglink.PREFIX}/projects/1/experiments",
        "/",
    ],
)
def test_each_kind_of_bad_value_is_refused_naming_it(shared_server, path, value):
    token = shared_server.make_token(unique_name())
    response = httpx.get(
        f"{shared_server.url}{path}?name={value}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.request.url.raw_path.endswith(f"?name={value}".encode())
    surface = "mlflow" if "mlflow" in path else "other"
    assert _field_of(surface, response) == "name"
    assert BAD_QUERIES[value] in response.text


def test_a_refused_write_writes_nothing(shared_server):
    token = shared_server.make_token(unique_name())
    with httpx.Client(
        base_url=shared_server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as client:
        refused = client.post("/projects?note=%C3%28", json={"display_name": "half"})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["field"] == "note"
        assert client.get("/projects").json() == []
        # well-encoded text, the same characters' valid UTF-8, is read as sent
        made = client.post("/projects", json={"display_name": "caf\u00e9 \u4e2d"})
        found = client.get("/projects?display_name=caf%C3%A9+%E4%B8%AD")
        assert found.status_code == 200, found.text
        assert [p["id"] for p in found.json()] == [made.json()["id"]]


def test_a_raw_non_ascii_byte_in_the_url_is_a_400_naming_the_url(shared_server):
    """llhttp refuses it before the app; the app's own check covers any other server."""
    import socket

    host, port = shared_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/projects?name=caf\xc3\xa9 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b'"field":"url"' in answer
    assert query_problem(b"name=caf\xc3\xa9") == (
        "name",
        "name: the query parameter's value has bytes that are not ASCII "
        "(percent-encode its UTF-8 bytes)",
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", None),
        (b"a=1&b=two+words&c=%C3%A9%E4%B8%AD&d=&e", None),
        (b"%FF=1", "query"),
        (b"ok=1&caf%C3%A9=%FF", "caf\u00e9"),
        (b"a+b=%zz", "a b"),
    ],
)
def test_query_problem_names_the_first_parameter_at_fault(query, expected):
    problem = query_problem(query)
    assert (problem and problem[0]) == expected


def test_path_problem_quotes_the_segment():
    assert path_problem(b"/api/v1/projects/1/artifacts/a%20b/%E4%B8%AD.txt") is None
    field, message = path_problem(b"/api/v1/projects/%FF/experiments")  # type: ignore[misc]
    assert field == "path"
    assert "'%FF'" in message
