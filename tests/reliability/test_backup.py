"""``mltrail db backup``: a consistent copy of a SQLite database while a writer is busy."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from mltrail.core.types import MetricBatch
from mltrail.store.sql import SqlStore
from support.factories import batch, chunk


def mltrail_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLTRAIL_URL"}
    return subprocess.run(
        [sys.executable, "-m", "mltrail", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _batch(seq: int, n: int = 1000) -> MetricBatch:
    its = np.arange((seq - 1) * n, seq * n)
    return batch(seq, chunk("loss", its, its * 0.5), client="backup-writer")


def test_backup_while_writing_is_a_consistent_snapshot(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    store = SqlStore.open(url)
    project = store.create_project("live")
    exp = store.create_experiment(project.id)
    store.append_points(project.id, exp.experiment_id, _batch(1))
    stop = threading.Event()
    written = []

    def keep_writing() -> None:
        seq = 2
        while not stop.is_set():
            store.append_points(project.id, exp.experiment_id, _batch(seq))
            written.append(seq)
            seq += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        backups = [tmp_path / f"copy-{i}.db" for i in range(3)]
        for path in backups:
            done = mltrail_cli("db", "backup", str(path), "--db", url)
            assert done.returncode == 0, done.stderr
            assert f"to {path}" in done.stdout and "pages" in done.stdout
    finally:
        stop.set()
        writer.join(30)
    assert len(written) > 0, "the writer never ran during the backups"
    for path in backups:
        copy = SqlStore.open(f"sqlite:///{path}")
        try:
            series = copy.read_series(project.id, exp.experiment_id, "loss", "train")
            its = series.iterations
            # whole batches only, in order, values intact: a snapshot, never a torn write
            assert len(its) % 1000 == 0 and its.tolist() == list(range(len(its)))
            assert np.array_equal(series.values, its * 0.5)
            summary = {s.key: s for s in copy.list_series(project.id, exp.experiment_id)}
            assert summary["loss"].count == len(its)
        finally:
            copy.close()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    print(f"3 backups taken while {len(written)} batches were written")
    store.close()


def test_backup_refuses_to_overwrite_and_names_the_problem(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    SqlStore.open(url).close()
    existing = tmp_path / "exists.db"
    existing.write_bytes(b"keep me")
    done = mltrail_cli("db", "backup", str(existing), "--db", url)
    assert done.returncode == 2 and "already exists" in done.stderr
    assert existing.read_bytes() == b"keep me"
    missing = mltrail_cli("db", "backup", str(tmp_path / "b.db"), "--db", "sqlite:///nowhere.db")
    assert missing.returncode == 2 and "no database at" in missing.stderr
    assert "Traceback" not in done.stderr + missing.stderr


def test_backup_of_postgresql_points_at_pg_dump(tmp_path: Path):
    done = mltrail_cli(
        "db", "backup", str(tmp_path / "x"), "--db", "postgresql+psycopg://u@127.0.0.1/db"
    )
    assert done.returncode == 2
    assert "pg_dump --format=custom" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()


def test_backup_defaults_to_the_embedded_database(tmp_path: Path):
    home = Path(os.environ["MLTRAIL_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    store = SqlStore.open(f"sqlite:///{home / 'mltrail.db'}")
    store.create_project("embedded")
    store.close()
    done = mltrail_cli("db", "backup", str(tmp_path / "embedded-copy.db"))
    assert done.returncode == 0, done.stderr
    copy = SqlStore.open(f"sqlite:///{tmp_path / 'embedded-copy.db'}")
    assert [p.display_name for p in copy.list_projects()] == ["embedded"]
    copy.close()
