"""The ``mltrail server`` process: first-start admin token, restarts, ``db upgrade``, ``ui``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from mltrail.core.errors import TransportError
from mltrail.core.types import MetricBatch, SeriesChunk
from mltrail.store.http import HttpStore
from support.servers import ServerProcess, free_port, unique_name

LAUNCH = "import sys; from mltrail.cli.main import main; main(sys.argv[1:])"


def test_admin_token_is_printed_once_on_first_start(server: ServerProcess):
    first = [line for line in server.stdout_lines if line.startswith("admin token: ")]
    assert len(first) == 1 and server.admin_token and server.admin_token.startswith("mlt_")
    token = server.admin_token
    server.stop()
    server.start()
    assert not [line for line in server.stdout_lines if "token" in line]
    with HttpStore(server.url, token) as store:  # the first token still works
        assert store.me().is_admin


def test_data_survives_sigkill_and_restart(server: ServerProcess):
    with HttpStore(server.url, server.admin_token) as store:
        project = store.create_project("durable")
        store.create_experiment(project.id, display_name="kept")
        server.kill()
        server.start()
        assert store.latest_experiment(project.id).display_name == "kept"


def test_http_store_retries_until_the_server_is_back(server: ServerProcess):
    with HttpStore(server.url, server.admin_token, retries=40, backoff=0.1) as store:
        project = store.create_project("retried")
        server.kill()
        restart = threading.Thread(target=server.start)
        restart.start()
        try:
            assert store.get_project(project.id).display_name == "retried"
        finally:
            restart.join()


def test_http_store_gives_up_with_transport_error():
    sleeps: list[float] = []
    store = HttpStore(f"http://127.0.0.1:{free_port()}", "t", retries=3, sleep=sleeps.append)
    with store, pytest.raises(TransportError) as info:
        store.list_projects()
    assert "cannot reach" in str(info.value)
    assert sleeps == [0.2, 0.4, 0.8]  # backoff doubles between attempts


def test_server_on_postgres(live_server: ServerProcess):
    with HttpStore(live_server.url, live_server.admin_token) as store:
        project = store.create_project("pg")
        assert store.create_experiment(project.id).experiment_id == 1
        assert store.create_experiment(project.id).experiment_id == 2


def test_serving_imports_neither_jwt_nor_alembic():
    """What a server needs only for the MissingLink client's id_tokens (PyJWT, cryptography)
    or for migrating (Alembic) is not resident in one that serves the rest (~20 MB)."""
    code = (
        "import sys, mltrail.cli.server, mltrail.server.app, mltrail.store.sql; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jwt', 'cryptography', 'alembic'}))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_serving_sqlite_does_not_import_the_postgresql_dialect(tmp_path):
    """SQLAlchemy's PostgreSQL dialect (2 MB resident) loads only where a PostgreSQL database
    is opened: a server on a migrated SQLite database, its store open, never imports it."""
    url = f"sqlite:///{tmp_path / 'served.db'}"
    assert _run("db", "upgrade", "--db", url).returncode == 0  # as the server's forked child
    code = (
        "import sys, mltrail.cli.server, mltrail.server.app; "
        "from mltrail.store.sql import SqlStore; "
        f"SqlStore.open({url!r}).close(); "
        "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.postgresql')))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_db_upgrade_is_repeatable(tmp_path):
    url = f"sqlite:///{tmp_path / 'up.db'}"
    for _ in range(2):
        done = _run("db", "upgrade", "--db", url)
        assert done.returncode == 0, done.stderr
        assert "up to date" in done.stdout
    assert (tmp_path / "up.db").stat().st_size > 0


def test_ui_serves_the_embedded_store_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        me = _wait_json(f"http://127.0.0.1:{port}/api/v1/me", proc)
        assert me == {"id": 0, "name": "local", "is_admin": True}
        created = httpx.post(f"http://127.0.0.1:{port}/api/v1/projects", json={"display_name": "u"})
        assert created.status_code == 201
        assert (tmp_path / "mltrail.db").exists()
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_json(url: str, proc: subprocess.Popen[str]) -> object:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            return httpx.get(url, timeout=1).json()
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_health_answers_while_a_large_batch_is_ingested(shared_server):
    per = 250_000
    chunks = tuple(
        SeriesChunk(f"m{k}", "train", np.arange(per), np.full(per, -1), np.ones(per), np.ones(per))
        for k in range(4)
    )
    token = shared_server.make_token(unique_name())
    with HttpStore(shared_server.url, token) as store:
        project = store.create_project("big")
        exp = store.create_experiment(project.id)
        stored: list[int] = []
        ingest = threading.Thread(
            target=lambda: stored.append(
                store.append_points(project.id, exp.experiment_id, MetricBatch("c", 1, chunks))
            )
        )
        ingest.start()
        answers = []
        while ingest.is_alive():
            answers.append(httpx.get(shared_server.url + "/healthz", timeout=10).status_code)
            time.sleep(0.05)
        ingest.join()
    assert stored == [1_000_000]
    assert answers and set(answers) == {200}


@pytest.mark.parametrize("command", ["server", "ui"])
def test_a_port_in_use_is_one_line_before_any_listening_message(tmp_path, command):
    # it printed "mltrail server listening on ..." and then uvicorn's bind error, exit 3
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", LAUNCH, command, "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1
    assert "listening" not in done.stderr and "UI at" not in done.stdout
    assert done.stderr.splitlines()[-1] == (
        f"Error: port: cannot listen on 127.0.0.1:{port}: Address already in use (is another "
        "server running there? choose another --port)"
    )


@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="no dual-stack IPv6 here")
def test_host_any_ipv6_address_accepts_ipv4_clients_too():
    # uvicorn's own bind left '::' dual-stack; binding the socket ourselves made it IPv6-only
    from mltrail.cli.server import _listen

    with _listen("::", 0) as listening:
        port = listening.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass


def test_a_log_long_poll_ends_normally_when_the_server_is_stopped(server: ServerProcess):
    # a follower's long poll (up to 10 s) outlived uvicorn's 5 s graceful shutdown, which
    # cancelled it and answered 500: `mltrail experiments logs` then died with "HTTP 500"
    with HttpStore(server.url, server.admin_token) as store:
        project = store.create_project("stopping")
        run = store.create_experiment(project.id, display_name="live")  # running, no lines
    url = f"{server.url}/api/v1/projects/{project.id}/experiments/{run.experiment_id}/logs"
    answers: list[httpx.Response] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            httpx.get(
                url, params={"wait": 20}, timeout=30,
                headers={"Authorization": f"Bearer {server.admin_token}"},
            )
        )
    )  # fmt: skip
    poll.start()
    time.sleep(3.0)  # the poll is waiting on the server now (it waits up to 20 s)
    server.stop(timeout=20)
    poll.join(30)
    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["lines"] == []
