"""One bad batch never blocks the others: a batch the store refuses (4xx) is set aside in
``spool/rejected/`` with the store's message, one warning names it, and every later batch is
stored; spool files that cannot be read go there too, and ``mltrail sync`` reports counts.

Trainers are real processes with every default on (console capture, logging, the writer), in
embedded mode and against real servers on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from mltrail.config import Settings
from mltrail.core.types import Status
from mltrail.sdk.records import encode_metrics
from mltrail.sdk.spool import RunAddress, Spool, target_of
from mltrail.store import open_store
from reliability.test_faults import (
    PROCESS_TIMEOUT,
    expect_line,
    launch_script,
    run_sync,
    trainer_env,
)
from support.factories import batch, chunk
from support.servers import ServerProcess

BATCHES, SIZE, POISON_AT = 6, 500, 3


def _env(home: Path, server: ServerProcess | None) -> dict[str, str]:
    if server is not None:
        return trainer_env(server, home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    return env | {"MLTRAIL_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def _settings(home: Path, server: ServerProcess | None) -> Settings:
    env = {"MLTRAIL_HOME": str(home)}
    if server is not None:
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.admin_token or ""}
    return Settings.from_env(env)


@pytest.fixture(params=["embedded", "sqlite-server", "postgres-server"])
def mode(
    request: pytest.FixtureRequest, server_factory, migrated_sqlite_url
) -> ServerProcess | None:
    if request.param == "embedded":
        return None
    if request.param == "sqlite-server":
        return server_factory(migrated_sqlite_url)
    return server_factory(request.getfixturevalue("migrated_pg_url"))


def test_a_refused_batch_is_set_aside_and_later_batches_are_stored(
    tmp_path: Path, mode: ServerProcess | None
):
    proc = launch_script(
        "spool_trainer.py", _env(tmp_path, mode), BATCHES, SIZE, "--poison-at", POISON_AT
    )
    project, experiment = expect_line(proc, "STARTED")
    _, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 0, err[-2000:]

    refusals = re.findall(r"the store refused a metrics batch .* Kept in (\S+\.json)", err)
    assert len(refusals) == 1, err[-2000:]  # one warning, naming the file
    spool = Spool.from_settings(_settings(tmp_path, mode))
    [kept] = spool.rejected()
    assert refusals[0] == str(kept)
    assert json.loads(kept.read_bytes())["chunks"][0]["key"] == "bad\x00key"
    reason = kept.with_suffix(".error").read_text()
    assert reason.startswith("refused by the store:") and "control" in reason, reason
    assert spool.files() == []  # nothing waits behind it

    with open_store(_settings(tmp_path, mode)) as store:
        p, e = int(project), int(experiment)
        stored = store.read_series(p, e, "loss", "train").iterations.tolist()
        assert stored == list(range(BATCHES * SIZE))
        assert store.get_experiment(p, e).status is Status.DONE
    print(
        f"poison batch ({'embedded' if mode is None else 'server'}): stored {len(stored)} of "
        f"{BATCHES * SIZE} good points, 1 batch set aside"
    )


def _spooled_run(
    settings: Settings, name: str, *, deleted: bool = False
) -> tuple[int, int, Spool, Callable[..., Path]]:
    """A new experiment (its project deleted if asked), the spool, and ``write(seq, start,
    project=p)``, which spools batch ``seq`` of 100 points from ``start`` for it."""
    with open_store(settings) as store:
        exp = store.create_experiment(store.create_project(name).id)
        p, e = exp.project_id, exp.experiment_id
        if deleted:
            store.delete_project(p)
    spool, target = Spool.from_settings(settings), target_of(settings)

    def write(seq: int, start: int, project: int = p) -> Path:
        points = chunk("loss", range(start, start + 100), [0.5] * 100)
        path = spool.write(
            RunAddress(target, (project, e)), "c", encode_metrics(batch(seq, points))
        )
        assert path is not None
        return path

    return p, e, spool, write


def test_sync_sets_bad_files_aside_reports_counts_and_fails_only_when_unreachable(
    tmp_path: Path, mode: ServerProcess | None
):
    settings = _settings(tmp_path, mode)
    p, e, spool, write = _spooled_run(settings, "sync-counts")

    write(1, 0)
    write(2, 100, project=999)  # no such project: the store refuses it (404)
    write(3, 200).write_bytes(b"\x00\xff not json")  # unreadable
    partial = write(4, 300)
    body = json.loads(partial.read_bytes())
    del body["chunks"]  # valid JSON, missing a field
    partial.write_bytes(json.dumps(body).encode())
    for seq in range(5, 80):  # 7,500 good points behind them
        write(seq, seq * 100)

    done = run_sync(_env(tmp_path, mode))
    assert done.returncode == 0, done.stderr
    assert "uploaded 76 of 79 spooled batches (7600 points, 0 log lines stored)" in done.stdout
    assert "rejected 3" in done.stdout
    assert done.stderr.count("set aside") == 3, done.stderr
    assert len(spool.rejected()) == 3 and spool.files() == []
    with open_store(settings) as store:
        assert store.get_experiment(p, e).metrics["train/loss"] is not None
        assert len(store.read_series(p, e, "loss", "train").iterations) == 7_600

    if mode is None:
        return  # an embedded store is never unreachable (a locked file is waited for)
    write(80, 8_000)  # the server down now: the only case that exits non-zero
    mode.stop()
    # the stopped server's port refuses at once: only the client's pauses between its retries
    # (6.2 s by default) would take time; the user's 1 s request deadline ends them sooner
    done = run_sync(_env(tmp_path, mode) | {"MLTRAIL_REQUEST_DEADLINE": "1"})
    assert done.returncode != 0
    assert "1 batches remain" in done.stderr, done.stderr


def test_batches_refused_while_their_project_was_deleted_are_replayed_by_retry_rejected(
    tmp_path: Path, mode: ServerProcess | None
):
    settings = _settings(tmp_path, mode)
    p, e, spool, write = _spooled_run(settings, "deleted-then-restored", deleted=True)
    write(1, 100)
    write(2, 200)
    write(3, 0, project=999)

    done = run_sync(_env(tmp_path, mode))
    assert done.returncode == 0 and "rejected 3" in done.stdout, done.stdout + done.stderr
    assert "is deleted" in (spool.rejected()[0].with_suffix(".error").read_text())

    with open_store(settings) as store:
        store.restore_project(p)
    done = run_sync(_env(tmp_path, mode), "--retry-rejected")
    assert done.returncode == 0, done.stderr
    assert "moved 3 rejected batches back into the spool" in done.stdout
    assert "uploaded 2 of 3 spooled batches (200 points" in done.stdout, done.stdout
    assert "rejected 1" in done.stdout  # project 999 still does not exist: set aside again
    [still] = spool.rejected()
    assert still.with_suffix(".error").exists() and spool.files() == []
    with open_store(settings) as store:
        assert store.read_series(p, e, "loss", "train").iterations.tolist() == list(range(100, 300))
