"""``PATCH .../experiments/{e}`` with ``Prefer: return=minimal`` (RFC 7240): the change is
made and the answer is 204 without the experiment, which the server then does not read back
(what the SDK's end-of-run status update sends); without the header the answer is unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from mltrail.core.types import Status
from mltrail.store.sql import SqlStore
from mltrail.store.sql import experiments as sql_experiments
from support.inprocess import app_client, inprocess_store, ok_json

PATH = "/api/v1/projects/1/experiments/1"
MINIMAL = {"Prefer": "return=minimal"}


@pytest.fixture
def client(sqlite_store: SqlStore) -> Iterator[TestClient]:
    project = sqlite_store.create_project("minimal")
    sqlite_store.create_experiment(project.id)
    with app_client(sqlite_store) as test_client:
        yield test_client


def no_read_back(*args: object, **kwargs: object) -> None:
    raise AssertionError("the experiment was read back")


def test_a_minimal_status_change_answers_204_without_reading_back(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_experiments, "judged", no_read_back)
    answer = client.patch(PATH, json={"status": "done"}, headers=MINIMAL)
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    assert answer.headers["Preference-Applied"] == "return=minimal"
    monkeypatch.undo()
    stored = ok_json(client.get(PATH))
    assert stored["status"] == "done" and stored["ended_at"] is not None


def test_other_minimal_changes_are_made_and_answer_204(client: TestClient) -> None:
    headers = {"Prefer": "handling=strict, return=minimal"}
    answer = client.patch(PATH, json={"notes": "why", "status": "failed"}, headers=headers)
    assert answer.status_code == 204 and answer.content == b""
    stored = ok_json(client.get(PATH))
    assert (stored["notes"], stored["status"]) == ("why", "failed")


def test_without_the_preference_the_answer_is_the_experiment(client: TestClient) -> None:
    answer = ok_json(client.patch(PATH, json={"status": "done"}))
    assert answer["status"] == "done" and answer["experiment_id"] == 1
    assert (
        ok_json(
            client.patch(PATH, json={"notes": "x"}, headers={"Prefer": "return=representation"})
        )["notes"]
        == "x"
    )


def test_a_refused_minimal_change_is_the_usual_error(client: TestClient) -> None:
    assert client.patch(PATH, json={"status": "done"}, headers=MINIMAL).status_code == 204
    answer = client.patch(PATH, json={"status": "running"}, headers=MINIMAL)
    assert answer.status_code == 409
    assert "resum" in answer.json()["error"]["message"]


def test_http_store_records_a_status_without_the_answer(
    sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with inprocess_store(sqlite_store) as http:
        project = http.create_project("ends").id
        http.create_experiment(project)
        monkeypatch.setattr(sql_experiments, "judged", no_read_back)
        http.record_status(project, 1, Status.STOPPED)
        monkeypatch.undo()
        assert http.get_experiment(project, 1).status is Status.STOPPED
