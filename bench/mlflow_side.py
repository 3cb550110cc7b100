"""The MLflow anchor: its own virtualenv, a fresh ``mlflow server`` on SQLite, workloads run by
:mod:`bench.mlflow_worker` under that virtualenv's Python."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import procs

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-mlflow"
MLFLOW_VERSION = "3.17.2"  # newest 3.x whose mlflow-skinny is on PyPI here
WORKER = BENCH_DIR / "mlflow_worker.py"


def ensure_venv() -> Path:
    """The MLflow virtualenv's python, creating it (pip install mlflow==pinned) on first use."""
    python = VENV / "bin" / "python"
    marker = VENV / f".mlflow-{MLFLOW_VERSION}"
    if marker.exists():
        return python
    print(f"creating {VENV} with mlflow=={MLFLOW_VERSION} (first use only)...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"mlflow=={MLFLOW_VERSION}"], check=True
    )
    marker.touch()
    return python


class MlflowSide:
    """A fresh MLflow tracking server on a fresh SQLite file, and its workloads."""

    def __init__(self, workdir: Path) -> None:
        self.python = ensure_venv()
        self.db_path = workdir / "mlflow.db"
        self.db_uri = f"sqlite:///{self.db_path}"
        port = procs.free_port()
        argv = [
            str(VENV / "bin" / "mlflow"), "server",
            "--backend-store-uri", self.db_uri,
            "--default-artifact-root", str(workdir / "mlflow-artifacts"),
            "--host", procs.LOOPBACK, "--port", str(port),
        ]  # fmt: skip
        self.server = procs.Server(
            "mlflow server", argv, port, workdir / "mlflow-server.log", env=self._env()
        )
        self.server.wait_ready("/health", timeout=180)
        self.server.wait_idle()  # its workers keep importing after /health answers

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"
        return env

    def run(self, workload: str, timeout: float = 1200, **args: Any) -> dict[str, Any]:
        """Run one workload of the MLflow worker against this server."""
        args.setdefault("uri", self.server.url)
        args.setdefault("db_uri", self.db_uri)
        argv = [str(self.python), str(WORKER), workload, json.dumps(args)]
        return procs.run_json(argv, timeout=timeout, env=self._env())

    def used_db_bytes(self) -> int:
        """Bytes of the SQLite file in use (pages minus free pages), after a WAL checkpoint."""
        return used_sqlite_bytes(self.db_path)

    def close(self) -> None:
        self.server.stop()


def used_sqlite_bytes(path: Path) -> int:
    """Bytes a SQLite database uses: checkpoint the WAL, then (pages - free pages) x page size."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)
    finally:
        conn.close()
