"""An artifact path whose %-escapes are not UTF-8 (``%FF``) is a 400 naming the path, on
/api/v1 and on the mlflow-artifacts proxy (server/url_guard.py checks every URL): the server
decodes such escapes to U+FFFD, which was stored as part of the name. A path spelling U+FFFD
itself (``%EF%BF%BD``) is a name."""

from __future__ import annotations

import httpx
import pytest

from support.clients import error_of


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
def test_an_invalid_utf8_escape_in_an_artifact_path_is_400(client, experiment, method) -> None:
    response = client.request(method, experiment + "/artifacts/runs/a%FFb.txt", content=b"x")
    error = error_of(response, 400)
    assert (error["type"], error["field"]) == ("validation_error", "path")
    assert "a%FFb.txt" in error["message"]
    assert client.get(experiment + "/artifacts").json() == []


def test_a_path_spelling_the_replacement_character_is_kept(client, experiment) -> None:
    stored = client.put(experiment + "/artifacts/runs/%EF%BF%BD.txt", content=b"x")
    assert stored.status_code == 201, stored.text
    assert [a["path"] for a in client.get(experiment + "/artifacts").json()] == ["runs/\ufffd.txt"]


def test_the_mlflow_artifacts_proxy_refuses_it_too(client, experiment, shared_server) -> None:
    project, number = experiment.split("/")[2], experiment.split("/")[4]
    url = f"{shared_server.url}/api/2.0/mlflow-artifacts/artifacts/{project}/{project}-{number}"
    headers = {"Authorization": client.headers["Authorization"]}
    for method in ("PUT", "GET", "DELETE"):
        answer = httpx.request(method, url + "/artifacts/a%FF.txt", content=b"x", headers=headers)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert body["message"].startswith("path: ") and "a%FF.txt" in body["message"]
    assert client.get(experiment + "/artifacts").json() == []
