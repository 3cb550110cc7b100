"""A server started in a process where another one was stopped: its long polls still wait
(``server.polling.STOPPING`` is cleared when an app starts, not left set by the last one)."""

from __future__ import annotations

import signal
from pathlib import Path

from fastapi import FastAPI
from starlette.testclient import TestClient

from mltrail.cli.server import _uvicorn_server
from mltrail.config import Settings
from mltrail.server import create_app
from mltrail.server.polling import STOPPING
from mltrail.store.sql import SqlStore


def _app(home: Path, store: SqlStore) -> FastAPI:
    return create_app(Settings(home=home), store, require_auth=False, allowed_hosts=["*"])


def test_a_long_poll_of_a_new_app_waits_after_another_server_was_stopped(tmp_path: Path):
    store = SqlStore.open(f"sqlite:///{tmp_path / 'polls.db'}")
    reads = 0
    tail_logs = store.tail_logs

    def counting_tail_logs(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return tail_logs(*args, **kwargs)

    store.tail_logs = counting_tail_logs  # type: ignore[method-assign]
    _uvicorn_server(_app(tmp_path, store)).handle_exit(
        signal.SIGTERM, None
    )  # the first server is told to stop
    assert STOPPING.is_set()
    try:
        with TestClient(_app(tmp_path, store)) as client:
            project = client.post("/api/v1/projects", json={"display_name": "p"}).json()["id"]
            path = f"/api/v1/projects/{project}/experiments"
            experiment = client.post(path, json={}).json()["experiment_id"]
            answer = client.get(f"{path}/{experiment}/logs", params={"wait": 0.6})
        assert answer.status_code == 200, answer.text
        assert answer.json()["lines"] == []
        assert reads > 1  # asked again while waiting, instead of answering at once
    finally:
        STOPPING.clear()
        store.close()
