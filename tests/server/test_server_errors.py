"""Bad input answers 4xx with ``{"error": {"type", "field", "message"}}``: never a 500."""

from __future__ import annotations

import base64
import json
import struct

import httpx
import orjson
import pytest

from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.types import Status
from support.clients import error_of
from support.factories import wire_chunk
from support.servers import unique_name

LIMIT = 64 * 1024 * 1024


_error = error_of


_chunk = wire_chunk
_B64_1E16 = base64.b64encode(struct.pack("<2d", 1e16, 1e16)).decode()


def test_a_body_over_64_mib_is_413(client, experiment):
    body = b'{"client_id": "c", "seq": 1, "chunks": [], "pad": "' + b"x" * LIMIT + b'"}'
    response = client.post(experiment + "/points", content=body)
    error = _error(response, 413)
    assert (error["type"], error["field"]) == ("payload_too_large", "body")


def test_a_streamed_body_over_the_limit_is_413(client, experiment):
    def pieces():
        yield b'{"client_id": "c", "seq": 1, "chunks": [], "pad": "'
        for _ in range(LIMIT // (1 << 20) + 1):
            yield b"x" * (1 << 20)
        yield b'"}'

    response = client.post(experiment + "/logs", content=pieces())
    assert _error(response, 413)["type"] == "payload_too_large"


ANONYMOUS_LIMIT = 1024 * 1024
# routes that read their body before their token check (FastAPI parses Body() parameters
# first): MissingLink's metric updates, and its token refresh (which takes no token at all)
_ML = "/_ah/api/missinglink/v1"
_ANONYMOUS_POSTS = [
    f"{_ML}/projects/1/experiments/1/metrics",
    f"{_ML}/users/refresh_token",
    "/api/2.0/mlflow/runs/log-batch",
    "/api/v1/projects",
]


@pytest.mark.parametrize("path", _ANONYMOUS_POSTS)
def test_an_anonymous_body_over_1_mib_is_413_before_it_is_read(shared_server, path):
    body = b'{"pad": "' + b"x" * ANONYMOUS_LIMIT + b'"}'
    with httpx.Client(base_url=shared_server.url, timeout=60) as anonymous:
        declared = anonymous.post(path, content=body)
        streamed = anonymous.post(path, content=iter([body[:1000], body[1000:]]))
    for response in (declared, streamed):
        error = _error(response, 413)
        assert (error["type"], error["field"]) == ("payload_too_large", "body")
        assert "without a token" in error["message"]
        assert response.headers["connection"] == "close"


def test_a_token_lifts_the_anonymous_limit(shared_server):
    body = b'{"pad": "' + b"x" * ANONYMOUS_LIMIT + b'"}'
    headers = {"Authorization": "Bearer not-a-token"}
    with httpx.Client(base_url=shared_server.url, timeout=60, headers=headers) as client:
        response = client.post(_ANONYMOUS_POSTS[0], content=body)
    assert response.status_code == 401, response.text


def test_a_small_anonymous_body_gets_its_401(shared_server):
    with httpx.Client(base_url=shared_server.url, timeout=60) as anonymous:
        response = anonymous.post(_ANONYMOUS_POSTS[0], content=b'{"pad": "' + b"x" * 1000 + b'"}')
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("token", ["\ud800", "mlt_\udcff", "x\x00"])
def test_a_refresh_token_that_is_no_text_is_a_401(shared_server, token):
    """JSON may carry a lone surrogate (``"\\ud800"``), which no token holds: it was a 500
    (UnicodeEncodeError hashing it) on MissingLink's token exchange, which takes no token."""
    body = json.dumps({"refresh_token": token}).encode()  # "\\ud800": orjson refuses to write it
    with httpx.Client(base_url=shared_server.url, timeout=60) as anonymous:
        response = anonymous.post(
            f"{_ML}/users/refresh_token", content=body, headers={"Content-Type": "application/json"}
        )
    assert _error(response, 401)["type"] == "authentication_error"


@pytest.mark.parametrize("depth", [300, 600, 900])
def test_hyperparameters_nested_too_deeply_are_a_422_and_store_nothing(client, depth):
    """JSON nested a few hundred levels parses; then the tagged-float walk (core/wire.py) ran
    out of Python's stack (a 500), or, under 500 levels, the experiment was stored and its
    answer failed to serialise (a 500 after the write)."""
    project = client.post("/projects", json={"display_name": "deep"}).json()["id"]
    body = '{"hyperparameters": {"x": ' + "[" * depth + "1" + "]" * depth + "}}"
    response = client.post(
        f"/projects/{project}/experiments",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert _error(response, 422)["type"] == "validation_error"
    assert client.get(f"/projects/{project}/experiments").json()["items"] == []


def test_a_body_just_under_the_limit_is_read(client, experiment):
    pad = "x" * (8 * 1024 * 1024)
    response = client.post(
        experiment + "/points", json={"client_id": "c", "seq": 1, "chunks": [], "pad": pad}
    )
    assert _error(response, 422)["field"] == "pad"  # read and parsed: its unknown field named


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        # what a newer client adds, refused by name rather than dropped
        ("POST", "/projects", {"display_name": "p", "unique_nam": True}, "unique_nam"),
        ("PATCH", "{experiment}", {"keep_hyperparameter": True}, "keep_hyperparameter"),
        ("POST", "{experiment}/logs",
         {"client_id": "c", "seq": 1, "lines": [{"time": 1.0, "stream": "stdout", "level": "INFO",
                                                 "message": "m", "colour": "red"}]},
         "lines[0].colour"),
        ("POST", "/external-metrics",
         {"targets": [{"weights_hash": "ab", "run": 1}], "metrics": {"ex_a": 1}},
         "targets[0].run"),
        # a batched read's entries are objects the route parses itself, not a model
        ("POST", "/series/read",
         {"series": [{"project": 1, "experiment": 1, "key": "loss", "colour": "red"}],
          "max_points": 10},
         "series[0].colour"),
    ],
)  # fmt: skip
def test_an_unknown_field_is_422_naming_it(client, experiment, method, path, body, field):
    response = client.request(method, path.format(experiment=experiment), json=body)
    error = _error(response, 422)
    assert (error["type"], error["field"]) == ("validation_error", field), error
    assert "unknown field" in error["message"]


def test_the_mlflow_surface_still_ignores_fields_it_does_not_model(shared_server):
    token = shared_server.make_token(unique_name())
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=shared_server.url, headers=headers, timeout=60) as mlflow:
        body = {"name": unique_name("mlflow"), "a_newer_mlflow_field": 1}
        response = mlflow.post("/api/2.0/mlflow/experiments/create", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["experiment_id"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/projects", {}, "display_name"),
        ("/projects", {"display_name": 5}, "display_name"),
        ("/projects", {"display_name": "   "}, "display_name"),
        ("/projects", {"display_name": "x" * 141}, "display_name"),
    ],
)
def test_422_names_the_field_of_a_project(client, path, body, field):
    error = _error(client.post(path, json=body), 422)
    assert (error["type"], error["field"]) == ("validation_error", field)
    assert error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seq": 1, "chunks": []}, "client_id"),
        ({"client_id": "c", "seq": "one", "chunks": []}, "seq"),
        ({"client_id": "c", "seq": 1, "chunks": [_chunk(n=-1)]}, "chunks[0].n"),
        ({"client_id": "c", "seq": 1, "chunks": [_chunk(values="!!!")]}, "chunks[0].values"),
        ({"client_id": "c", "seq": 1, "chunks": [_chunk() | {"n": 3}]}, "chunks[0].iterations"),
        ({"client_id": "c", "seq": 1, "chunks": [_chunk(phase="dev")]}, "phase"),
        # past what int64 milliseconds hold: it was stored as -9.2e15 without a word
        ({"client_id": "c", "seq": 1, "chunks": [_chunk(times=_B64_1E16)]}, "loss.time"),
    ],
)
def test_422_names_the_field_of_a_points_batch(client, experiment, body, field):
    error = _error(client.post(experiment + "/points", json=body), 422)
    assert error["field"] == field, error


def test_a_lone_surrogate_is_422_naming_its_field(client, experiment):
    """JSON's "\\ud800" parses to text no database stores (it was a 500 on every route)."""
    project = experiment.split("/")[2]
    head = {"Content-Type": "application/json"}
    batch = {"client_id": "c", "seq": 1, "chunks": [_chunk()]}
    chunk = orjson.dumps(batch).decode()
    for method, path, raw, field in [
        ("POST", "/projects", '{"display_name":"x\\ud800"}', "display_name"),
        ("PATCH", f"/projects/{project}", '{"display_name":"x\\udfff"}', "display_name"),
        ("PATCH", experiment, '{"tags":["\\udc80"]}', "tags"),
        ("PATCH", experiment, '{"description":"\\udc80"}', "description"),
        ("POST", experiment + "/points", chunk.replace('"loss"', '"\\ud800"'), "key"),
    ]:
        response = client.request(method, path, content=raw.encode(), headers=head)
        assert _error(response, 422)["field"] == field, (path, raw)
    # hyperparameters keep it in their JSON; only the search index cannot hold it
    body = b'{"hyperparameters":{"a\\udfff":"b\\ud800","n":1}}'
    assert client.patch(experiment, content=body, headers=head).status_code == 200
    assert client.get(experiment).json()["hyperparameters"]["n"] == 1


def test_a_lone_surrogate_in_a_search_is_refused_naming_it(client, experiment):
    """A filter or order holding "\\ud800" (MLflow's JSON body) reached the database: a 500."""
    project = experiment.split("/")[2].encode()
    search = str(client.base_url).rstrip("/").replace("/api/v1", "/api/2.0/mlflow/runs/search")
    for raw, field in (
        (b'{"experiment_ids":["ID"],"filter":"params.a = \'\\udc80\'"}', "filter"),
        (b'{"experiment_ids":["ID"],"order_by":["params.\\ud800 asc"]}', "order_by"),
    ):
        content = raw.replace(b"ID", project)
        response = client.post(
            search, content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["message"].startswith(field), response.text


def test_invalid_json_is_422_on_body(client, experiment):
    response = client.post(
        experiment + "/logs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    error = _error(response, 422)
    assert error["field"] == "body"
    assert "JSON" in error["message"]


def test_bad_query_parameters_are_422(client, experiment):
    project = experiment.split("/")[2]
    assert _error(client.get(f"/projects/{project}/experiments?limit=abc"), 422)["field"] == (
        "limit"
    )
    read = client.get(experiment + "/series/read", params={"key": "loss", "max_points": 1})
    assert _error(read, 422)["field"] == "max_points"
    assert _error(client.get(experiment + "/logs?after_seq=-1"), 422)["field"] == "after_seq"


def test_ex_metrics_text_that_is_not_json_is_422(client, experiment):
    _, _, p, _, e = experiment.split("/")
    target = {"project_id": int(p), "experiment_id": int(e)}
    body = {"targets": [target], "metrics": "{ex_cost: 1"}
    error = _error(client.post("/external-metrics", json=body), 422)
    assert error["field"] == "metrics"


def test_chart_shape_mismatch_is_422_naming_chart_y(client, experiment):
    _, _, p, _, e = experiment.split("/")
    chart = {"name": "roc", "x": [1, 2, 3], "y": [1, 2]}
    body = {"targets": [{"project_id": int(p), "experiment_id": int(e)}], "chart": chart}
    assert _error(client.post("/charts", json=body), 422)["field"] == "chart_y"
    chart = {"name": "roc", "scope": "prod", "x": [1], "y": [1]}
    body["chart"] = chart
    assert _error(client.post("/charts", json=body), 422)["field"] == "chart_scope"


def test_unknown_objects_are_404(client, experiment):
    project = experiment.split("/")[2]
    assert _error(client.get(f"/projects/{project}/experiments/999"), 404)["type"] == "not_found"
    assert _error(client.get("/nowhere"), 404)["type"] == "not_found"
    unknown_hash = "f" * 40
    body = {"metrics": '{"ex_acc": 1}'}
    error = _error(client.post(f"/weights/{unknown_hash}/iteration-metrics", json=body), 404)
    assert error["field"] == "weights_hash"


def test_http_store_raises_the_stores_error_classes(shared_server, http_store_factory):
    store = http_store_factory(shared_server.url, shared_server.make_token(unique_name()))
    project = store.create_project("errors")
    with pytest.raises(ValidationError) as info:
        store.create_project("")
    assert info.value.field == "display_name"
    with pytest.raises(NotFoundError) as missing:
        store.get_experiment(project.id, 42)
    assert missing.value.field == "experiment"
    exp = store.create_experiment(project.id)
    store.update_experiment(project.id, exp.experiment_id, status=Status.DONE)
    with pytest.raises(ConflictError):
        store.request_stop(project.id, exp.experiment_id)


def test_text_the_database_cannot_hold_is_not_called_a_number_out_of_range():
    # PostgreSQL refuses NUL in text with a DataError, which read "a number is out of range"
    import sqlalchemy.exc

    from mltrail.server.errors import known_error

    nul = sqlalchemy.exc.DataError(
        "SELECT 1", {}, ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    )
    known = known_error(nul)
    assert isinstance(known, ValidationError)
    assert "NUL" in str(known) and "number" not in str(known)
    number = sqlalchemy.exc.DataError(
        "SELECT 1 WHERE x IS NULL", {}, ValueError("integer out of range")
    )
    for exc in (number, OverflowError("Python int too large to convert to SQLite INTEGER")):
        assert "a number is out of range" in str(known_error(exc))
