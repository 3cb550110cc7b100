"""A run starts while its server is unreachable, and the server numbers it later, exactly once.

Trainers are real processes with every default on (console capture, logging, the writer). The
server is a real process on SQLite or PostgreSQL, stopped while the run starts; it comes back
either during the run (the run's own writer creates its experiment) or after it (``mltrail
sync`` does, and prints what it created). Spools are keyed by the identity the server reports,
so the same server reached as ``localhost`` or on a new port still takes them, and ``mltrail
sync --to URL`` sends a spool anywhere.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mltrail.core.types import Status
from mltrail.store.http import HttpStore
from reliability.test_faults import (
    PROCESS_TIMEOUT,
    expect_line,
    launch_script,
    run_sync,
    trainer_env,
)
from support.servers import ServerProcess

BATCHES, SIZE = 8, 500


@pytest.fixture(params=["sqlite", "postgres"])
def stopped_server(
    request: pytest.FixtureRequest, server_factory, migrated_sqlite_url
) -> ServerProcess:
    """A real server (with its admin token made), stopped: its port refuses connections."""
    if request.param == "sqlite":
        url = migrated_sqlite_url
    else:
        url = request.getfixturevalue("migrated_pg_url")
    server = server_factory(url)
    server.stop()
    return server


def _check_one_run(server: ServerProcess, project: str) -> tuple[int, int]:
    """The project holds exactly one experiment, with every point once, ended ``done``."""
    with HttpStore(server.url, server.admin_token) as store:
        found = store.find_project(project)
        assert found is not None
        page = store.list_experiments(found.id)
        assert page.total == 1, [e.experiment_id for e in page.items]
        [exp] = page.items
        p, e = exp.project_id, exp.experiment_id
        iterations = store.read_series(p, e, "loss", "train").iterations.tolist()
        assert iterations == list(range(BATCHES * SIZE))
        record = store.get_experiment(p, e)
        assert record.status is Status.DONE
        assert record.hyperparameters == {"lr": 0.01, "optimizer": "adam"}  # set while offline
        assert record.tags == ("offline",) and record.notes == "started while the server was down"
        printed = [line.message for line in store.read_logs(p, e)]
        assert [m for m in printed if m.startswith("batch ")] == [
            f"batch {b}" for b in range(BATCHES)
        ]
    return p, e


def _launch(home: Path, server: ServerProcess, project: str, *args: object):
    started = time.monotonic()
    proc = launch_script(
        "spool_trainer.py", trainer_env(server, home), BATCHES, SIZE, "--project", project, *args
    )
    fields = expect_line(proc, "STARTED")
    return proc, fields, time.monotonic() - started


def test_offline_start_then_sync_creates_one_experiment_with_every_point(
    tmp_path: Path, stopped_server: ServerProcess
):
    proc, fields, took = _launch(tmp_path, stopped_server, "offline-then-sync")
    assert fields == ["None", "None"]  # no number yet: a project by name, an offline run
    _, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, err[-2000:]
    assert "started offline" in err
    run_id = re.search(r"run ([0-9a-f]{32}) started offline", err).group(1)
    assert took < 15, f"start() took {took:.1f} s with the server down"

    stopped_server.start()
    env = trainer_env(stopped_server, tmp_path)
    syncs = [
        subprocess.Popen(  # two syncs at once: the experiment is still created once
            [sys.executable, "-m", "mltrail", "sync"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [s.communicate(timeout=PROCESS_TIMEOUT) for s in syncs]
    assert [s.returncode for s in syncs] == [0, 0], outputs
    p, e = _check_one_run(stopped_server, "offline-then-sync")
    created = f"created experiment {p}/{e} 'spool-run' (offline run {run_id})"
    assert any(created in o for o, _ in outputs), outputs
    again = run_sync(env)
    assert again.returncode == 0 and "nothing to sync" in again.stdout, again.stdout
    assert not list((tmp_path / "spool" / "runs").glob("*.json"))  # the spec is gone too
    print(f"offline start took {took:.2f} s; sync created {p}/{e}; every point once")


def test_the_run_numbers_itself_when_the_server_comes_back(
    tmp_path: Path, stopped_server: ServerProcess
):
    proc, fields, took = _launch(tmp_path, stopped_server, "offline-then-online", "--wait")
    assert fields == ["None", "None"]
    stopped_server.start()
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, err[-2000:]
    p, e = _check_one_run(stopped_server, "offline-then-online")
    assert out.split()[-1] == str(e)  # the run learnt its number (EXPERIMENT <e>)
    assert not list((tmp_path / "spool").glob("*.json"))  # nothing left for `mltrail sync`
    assert not list((tmp_path / "spool" / "runs").glob("*.json"))
    print(f"offline start took {took:.2f} s; the run numbered itself {p}/{e}")


def test_a_spool_follows_its_server_to_another_name_and_port_and_sync_to_retargets(
    tmp_path: Path, server_factory, migrated_sqlite_url
):
    """Spooled while the server listened on 127.0.0.1:A; synced once it listens on B, reached as
    ``localhost``: the store's identity matches, so everything uploads. A spool for a server
    that never answered goes elsewhere with ``mltrail sync --to URL``."""
    server = server_factory(migrated_sqlite_url)
    proc = launch_script("spool_trainer.py", trainer_env(server, tmp_path), BATCHES, SIZE, "--wait")
    project, experiment = expect_line(proc, "STARTED")
    server.stop()  # the run's batches spool, keyed by the server's identity
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    _, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, err[-2000:]
    assert list((tmp_path / "spool").glob("*.json"))

    moved = ServerProcess(server.db_url, server.home)  # same database, a new port
    moved.admin_token = server.admin_token
    moved.start()
    try:
        env = trainer_env(moved, tmp_path) | {"MLTRAIL_URL": f"http://localhost:{moved.port}"}
        done = run_sync(env)
        assert done.returncode == 0, done.stderr
        assert "belong to another server" not in done.stdout, done.stdout
        assert not list((tmp_path / "spool").glob("*.json"))
        with HttpStore(moved.url, moved.admin_token) as store:
            p, e = int(project), int(experiment)
            stored = store.read_series(p, e, "loss", "train").iterations.tolist()
            assert stored == list(range(BATCHES * SIZE))
            assert store.get_experiment(p, e).status is Status.DONE

        # a run started offline against a server that never answers: --to sends it here
        nowhere = trainer_env(moved, tmp_path) | {"MLTRAIL_URL": "http://127.0.0.1:9"}
        lost = launch_script("spool_trainer.py", nowhere, 2, SIZE, "--project", "retarget")
        expect_line(lost, "STARTED")
        assert lost.wait(PROCESS_TIMEOUT) == 0
        plain = run_sync(env)
        assert "belong to another server" in plain.stdout, plain.stdout
        assert "`mltrail sync --to URL` sends them" in plain.stdout, plain.stdout  # the way out
        moved_env = env | {"MLTRAIL_URL": moved.url}
        retargeted = subprocess.run(
            [sys.executable, "-m", "mltrail", "sync", "--to", f"http://localhost:{moved.port}"],
            env=moved_env,
            capture_output=True,
            text=True,
            timeout=PROCESS_TIMEOUT,
        )
        assert retargeted.returncode == 0, retargeted.stderr
        assert "created 1 experiments" in retargeted.stdout, retargeted.stdout
        with HttpStore(moved.url, moved.admin_token) as store:
            found = store.find_project("retarget")
            assert found is not None
            [exp] = store.list_experiments(found.id).items
            count = len(store.read_series(found.id, exp.experiment_id, "loss", "train").iterations)
            assert count == 2 * SIZE
    finally:
        moved.close()
    print(f"moved from port {server.port} to localhost:{moved.port}: every point synced")
