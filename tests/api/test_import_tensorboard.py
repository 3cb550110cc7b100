"""``mltrail import tensorboard``: event files written by ``torch.utils.tensorboard``'s
``SummaryWriter`` in the test, imported by the CLI into an embedded store (SQLite) and into a
real ``mltrail server`` on PostgreSQL, read back point by point."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from mltrail.api import Api
from mltrail.config import Settings
from support.servers import ServerProcess, unique_name

WALL = 1_700_000_000.125  # seconds, a whole number of milliseconds
LOSS = [2.5, 1.75, math.nan, 0.1, math.inf, 1e-8]


def _mltrail(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mltrail", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(params=["embedded-sqlite", "server-postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path / "home")
    if request.param == "server-postgres":
        server: ServerProcess = request.getfixturevalue("shared_pg_server")
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.make_token(unique_name())}
    return env


def _write_runs(root: Path) -> None:
    with SummaryWriter(log_dir=str(root / "run-a")) as writer:
        for i, value in enumerate(LOSS):
            writer.add_scalar("loss", value, global_step=10 * i, walltime=WALL + i)
        for i in range(3):
            writer.add_scalar("validation/acc", 0.3 * i, global_step=i, walltime=WALL + 0.5 * i)
        writer.add_hparams({"lr": 0.01, "optimizer": "adam", "layers": 3}, {"hp/acc": 0.9},
                           run_name=".")  # fmt: skip
    with SummaryWriter(log_dir=str(root / "run-b")) as writer:
        for i in range(1000):
            writer.add_scalar("loss", 1 / (i + 1), global_step=i, walltime=WALL + i)
        writer.add_hparams({"lr": 0.1, "optimizer": "sgd"}, {"hp/acc": 0.5})  # in a sub-folder
    with SummaryWriter(log_dir=str(root / "run-c")) as writer:
        writer.add_scalar("x", 1.0, global_step=0, walltime=WALL)
        writer.add_scalar("x", 2.0, global_step=5, walltime=WALL + 2.5)


def test_import_reads_summary_writer_events_exactly_and_once(target, tmp_path):
    root = tmp_path / "tb"
    _write_runs(root)
    done = _mltrail(target, "import", "tensorboard", str(root), "-p", "from-tb")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 3 runs (0 already imported, skipped) into 1 project")
    assert "5 params" in done.stdout and "1,013 metric points" in done.stdout
    settings = Settings.from_env({k: v for k, v in target.items() if k.startswith("MLTRAIL_")})
    with Api.from_settings(settings) as api:
        project = api.store.find_project("from-tb")
        assert project is not None
        a, b, c = api.store.list_experiments(project.id).items
        assert (a.display_name, b.display_name, c.display_name) == ("run-a", "run-b", "run-c")
        assert a.hyperparameters == {"lr": 0.01, "optimizer": "adam", "layers": 3.0}
        assert b.hyperparameters == {"lr": 0.1, "optimizer": "sgd"}  # from its sub-folder
        assert [s.key for s in api.store.list_series(project.id, 2)] == ["hp/acc", "loss"]
        assert "tensorboard.run=run-a" in a.tags
        assert (c.started_at, c.ended_at) == (WALL, WALL + 2.5)  # first and last wall time
        assert a.started_at == b.started_at == WALL  # add_hparams logs hp/acc now: the end
        loss = api.store.read_series(project.id, a.experiment_id, "loss", "train", times=True)
        assert loss.iterations.tolist() == [10 * i for i in range(len(LOSS))]
        # event files keep 32-bit floats: the values are the float32 of what was written
        np.testing.assert_array_equal(loss.values, np.array(LOSS, np.float32).astype(np.float64))
        assert loss.times is not None
        assert np.round(loss.times * 1000).tolist() == [round((WALL + i) * 1000) for i in range(6)]
        acc = api.store.read_series(project.id, a.experiment_id, "acc", "validation")
        np.testing.assert_array_equal(acc.values, np.float32([0.0, 0.3, 0.6]).astype(np.float64))
        long = api.store.read_series(project.id, b.experiment_id, "loss", "train")
        assert long.iterations.tolist() == list(range(1000))
        np.testing.assert_array_equal(long.values, np.float32([1 / (i + 1) for i in range(1000)]))
        again = _mltrail(target, "import", "tensorboard", str(root), "-p", "from-tb")
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("imported 0 runs (3 already imported, skipped)")
        assert api.store.list_experiments(project.id).total == 3
        assert api.store.read_series(project.id, b.experiment_id, "loss", "train").total == 1000


def test_bad_input_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(tmp_path / "home")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "events.out.tfevents.1.host").write_bytes(b"not an event file at all")
    cases = [
        (tmp_path / "missing", "no such file or folder"),
        (tmp_path / "empty", "no TensorBoard event files"),
        (tmp_path / "notes.txt", "not a TensorBoard event file"),
        (tmp_path / "bad", "not a TensorBoard event file"),
    ]
    for path, words in cases:
        done = _mltrail(env, "import", "tensorboard", str(path))
        assert done.returncode != 0
        assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr, done.stderr
    with Api.from_settings(Settings.from_env({"MLTRAIL_HOME": env["MLTRAIL_HOME"]})) as api:
        assert api.store.list_projects() == []  # nothing half-written
