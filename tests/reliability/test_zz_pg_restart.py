"""PostgreSQL restarted under a server that is ingesting: the writers retry, nothing is lost.

The restarted database is a private cluster of the test's own (``support.pg_cluster``: initdb in a
temporary folder, its own port, removed afterwards); the machine's shared cluster is never touched.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path

import httpx

from mltrail.core.types import Status
from mltrail.store.http import HttpStore
from reliability.test_faults import (
    PROCESS_TIMEOUT,
    expect_line,
    launch,
    report,
    run_sync,
    stored_iterations,
    trainer_env,
)
from support.pg_cluster import PgCluster
from support.servers import ServerProcess


class _Probe:
    """Reads an experiment every 20 ms from a thread, counting the answers' statuses."""

    def __init__(self, server: ServerProcess, project_id: int, experiment_id: int) -> None:
        self.url = f"{server.url}/api/v1/projects/{project_id}/experiments/{experiment_id}"
        self.headers = {"Authorization": f"Bearer {server.admin_token}"}
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> _Probe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=30) as client:
            while not self._stop.wait(0.02):
                status = client.get(self.url).status_code
                self.statuses[status] = self.statuses.get(status, 0) + 1


def test_postgresql_restart_while_ingesting_loses_nothing(
    private_pg: PgCluster, server_factory, tmp_path: Path
):
    server: ServerProcess = server_factory(
        private_pg.url.replace("postgresql://", "postgresql+psycopg://") + "/postgres"
    )
    home = tmp_path / "trainers"
    env = trainer_env(server, home)
    n = 6000
    procs = [launch(env, f"pg-writer-{i}", n, 0.001, 5, "run") for i in range(3)]
    experiments = [tuple(map(int, expect_line(proc, "STARTED"))) for proc in procs]
    before = private_pg.started_at()
    time.sleep(1.0)
    probe = _Probe(server, *experiments[0]).start()
    try:  # down for a second, not a bare restart: a quiet machine's restart fell between probes
        private_pg.stop()
        time.sleep(1.0)
        private_pg.start()
    finally:
        private_pg.wait_ready()
        time.sleep(0.5)
        probe.stop()
    assert private_pg.started_at() > before, "PostgreSQL was not restarted"
    for proc in procs:
        _, err = proc.communicate(timeout=PROCESS_TIMEOUT)
        assert proc.returncode == 0, err
    done = run_sync(env)
    assert done.returncode == 0, done.stderr

    stored = duplicates = 0
    for p, e in experiments:
        its = stored_iterations(server, p, e)
        stored += len(its)
        duplicates += len(its) - len(set(its))
        assert its == list(range(n))
        with HttpStore(server.url, server.admin_token) as store:
            assert store.get_experiment(p, e).status is Status.DONE
    log = [json.loads(x) for x in server.stderr.splitlines() if x.startswith("{")]
    statuses = sorted({x["status"] for x in log if x["status"] >= 500})
    print(f"probe reads during the restart: {probe.statuses}; server 5xx statuses: {statuses}")
    assert probe.statuses.get(503), "the restart was never seen by the server"
    assert set(probe.statuses) <= {200, 503} and statuses == [503]  # retry, never a 500
    report("PostgreSQL restarted, 3 trainers", 3 * n, stored, stored, duplicates)
    assert stored == 3 * n and duplicates == 0


def test_a_database_that_is_down_answers_503_and_keeps_the_connection(
    private_pg: PgCluster, server_factory
):
    """A 503 used to close the client's keep-alive connection (Starlette's outermost error
    middleware answers, then re-raises): the next request on it failed with a reset."""
    server: ServerProcess = server_factory(
        private_pg.url.replace("postgresql://", "postgresql+psycopg://") + "/postgres"
    )
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=60)
    headers = {"Authorization": f"Bearer {server.admin_token}"}

    def answer(path: str) -> tuple[int, str | None, dict[str, object]]:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Retry-After"), json.loads(response.read())

    assert answer("/api/v1/projects")[0] == 200
    sock = conn.sock
    private_pg.stop()
    try:
        for path in ("/api/v1/projects", "/api/2.0/mlflow/experiments/get?experiment_id=1"):
            status, retry_after, body = answer(path)
            assert (status, retry_after) == (503, "1"), body
            assert conn.sock is sock  # the same connection, still open
        assert body == {
            "error_code": "TEMPORARILY_UNAVAILABLE",
            "message": "the database is busy or unreachable",
        }  # the MLflow surface answers in MLflow's shape
    finally:
        private_pg.start()
        private_pg.wait_ready()
    assert answer("/api/v1/projects")[0] == 200
    assert conn.sock is sock
    conn.close()
