"""A one-point MLflow log-metric runs on the server's event loop only when the database can take
it at once; behind a held write lock it waits in a worker thread, and the event loop keeps
answering meanwhile (log-parameter and set-tag, whose work grows with the run, always do)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.store.sql import SqlStore

API = "/api/2.0/mlflow"


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, SqlStore, Path]]:
    db_file = tmp_path / "small.db"
    store = SqlStore.open(f"sqlite:///{db_file}")
    token = store.auth.ensure_admin()
    app = create_app(Settings(home=tmp_path), store, allowed_hosts=["testserver"])
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app, headers=headers) as client:
        yield client, store, db_file
    store.close()


def _run(client: TestClient) -> str:
    exp = client.post(f"{API}/experiments/create", json={"name": "small"}).json()
    answer = client.post(f"{API}/runs/create", json={"experiment_id": exp["experiment_id"]})
    return str(answer.json()["run"]["info"]["run_id"])


def _writes(run_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "runs/log-metric",
            {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 1, "step": 3},
        ),
        ("runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"}),
        ("runs/set-tag", {"run_id": run_id, "key": "team", "value": "a"}),
    ]


def _stored(client: TestClient, run_id: str) -> dict[str, Any]:
    run = client.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["data"]
    return {
        "metrics": [(m["key"], m["value"], m["step"]) for m in run["metrics"]],
        "params": [(p["key"], p["value"]) for p in run["params"]],
        "team": [t["value"] for t in run["tags"] if t["key"] == "team"],
    }


def _held_by_another_connection(db_file: Path) -> Callable[[], None]:
    other = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release() -> None:
        other.execute("COMMIT")
        other.close()

    return release


def _held_by_this_process(store: SqlStore) -> Callable[[], None]:
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with store._db.write():
            holding.set()
            done.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait()

    def release() -> None:
        done.set()
        holder.join()

    return release


def test_small_writes_are_stored_when_the_database_is_free(app_client) -> None:
    client, _, _ = app_client
    run_id = _run(client)
    for path, body in _writes(run_id):
        answer = client.post(f"{API}/{path}", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {}
    assert _stored(client, run_id) == {
        "metrics": [("loss", 0.5, 3)], "params": [("lr", "0.1")], "team": ["a"]
    }  # fmt: skip


@pytest.mark.parametrize("holder", ["another connection", "this process"])
def test_a_small_write_behind_a_held_lock_waits_off_the_event_loop(app_client, holder) -> None:
    client, store, db_file = app_client
    run_id = _run(client)
    answers: list[Any] = []
    release = (
        _held_by_another_connection(db_file)
        if holder == "another connection"
        else _held_by_this_process(store)
    )
    try:
        writers = [
            threading.Thread(
                target=lambda p=p, b=b: answers.append(client.post(f"{API}/{p}", json=b))
            )
            for p, b in _writes(run_id)
        ]
        for writer in writers:
            writer.start()
        time.sleep(0.3)  # their requests reach the server (no assert on time)
        # the event loop answers while the writes wait for the lock (it would hang if one of
        # them held the loop: the lock is released only after this answer)
        assert client.get("/healthz").json() == {"status": "ok"}
        assert answers == []
    finally:
        release()
    for writer in writers:
        writer.join()
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert _stored(client, run_id) == {
        "metrics": [("loss", 0.5, 3)], "params": [("lr", "0.1")], "team": ["a"]
    }  # fmt: skip


def test_only_log_metric_runs_on_the_event_loop(app_client, monkeypatch) -> None:
    """log-parameter, set-tag and delete-tag read and rewrite the run's whole record: with
    thousands of params one took 25-300 ms of CPU, a hard stall of every other request when
    run on the event loop. A one-point log-metric's work does not grow with the run's size."""
    client, _, _ = app_client
    run_id = _run(client)
    on_loop: dict[str, list[bool]] = {}

    def recording(name: str) -> None:
        method = getattr(SqlStore, name)

        def record(self: SqlStore, *args: Any, **kwargs: Any) -> Any:
            on_loop.setdefault(name, []).append(asyncio._get_running_loop() is not None)
            return method(self, *args, **kwargs)

        monkeypatch.setattr(SqlStore, name, record)

    recording("update_experiment")
    recording("append_points")
    for path, body in [
        *_writes(run_id),
        ("runs/delete-tag", {"run_id": run_id, "key": "team"}),
    ]:
        answer = client.post(f"{API}/{path}", json=body)
        assert answer.status_code == 200, answer.text
    assert on_loop == {"append_points": [True], "update_experiment": [False, False, False]}
