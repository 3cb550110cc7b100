"""A database that stays locked past the busy timeout is a 503 (retry), never a 500.

The SQLite busy timeout is shortened for this test (the server's is 30 s); the lock is real,
held by another connection with ``BEGIN EXCLUSIVE``. HttpStore retries the 503 and the batch is
stored once the lock is gone.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from mltrail.config import Settings
from mltrail.core import series_codec
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.server import create_app
from mltrail.server.errors import database_unavailable
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from support.factories import chunk


@pytest.fixture
def locked_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("mltrail.store.sql.engine.BUSY_TIMEOUT_MS", 200)
    db_file = tmp_path / "busy.db"
    store = SqlStore.open(f"sqlite:///{db_file}")
    token = store.auth.ensure_admin()
    project = store.create_project("busy")
    exp = store.create_experiment(project.id)
    app = create_app(Settings(home=tmp_path), store, allowed_hosts=["testserver", "127.0.0.1"])
    yield app, token, db_file, exp
    store.close()


def _chunks(n: int = 20) -> tuple[SeriesChunk, ...]:
    return (chunk("loss", range(n), np.ones(n)),)


def _points() -> dict:
    return series_codec.metric_batch_to_wire(MetricBatch("busy", 1, _chunks()))


def _lock(db_file: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_file, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_locked_database_answers_503_with_retry_after(locked_app):
    app, token, db_file, exp = locked_app
    path = f"/api/v1/projects/{exp.project_id}/experiments/{exp.experiment_id}/points"
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        lock = _lock(db_file)
        try:
            busy = client.post(path, json=_points(), headers=headers)
        finally:
            lock.execute("COMMIT")
            lock.close()
        assert busy.status_code == 503, busy.text
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["type"] == "transport_error"
        after = client.post(path, json=_points(), headers=headers)
        assert after.status_code == 200, after.text


def test_http_store_rides_out_the_lock(locked_app):
    import uvicorn

    from support.servers import free_port

    app, token, db_file, exp = locked_app
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with HttpStore(f"http://127.0.0.1:{port}", token, backoff=0.2) as store:
            lock = _lock(db_file)
            release = threading.Timer(1.0, lambda: (lock.execute("COMMIT"), lock.close()))
            release.start()
            t0 = time.monotonic()
            store.append_points(exp.project_id, exp.experiment_id, MetricBatch("c", 1, _chunks()))
            waited = time.monotonic() - t0
            release.join()
            series = store.read_series(exp.project_id, exp.experiment_id, "loss", "train")
    finally:
        server.should_exit = True
        thread.join(10)
    assert series.iterations.tolist() == list(range(20))
    assert waited >= 0.5  # it really met the lock and retried
    print(f"append retried through a {waited:.1f} s lock and was stored once")


def test_only_database_faults_count_as_unavailable():
    import sqlalchemy.exc

    locked = sqlalchemy.exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("locked"))
    assert database_unavailable(locked)
    assert not database_unavailable(sqlalchemy.exc.IntegrityError("x", {}, Exception()))
    assert not database_unavailable(RuntimeError("OperationalError"))
    assert database_unavailable(sqlalchemy.exc.InvalidatePoolError())  # a DisconnectionError
