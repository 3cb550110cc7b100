"""The peers: MLflow-compatible tracking servers, each installed from the package registry into
its own virtualenv under ``bench/``, each with the configurations the benchmark tries.

A peer is only a way to start a server on a SQLite file and the URL it answers on: every
workload runs through the MLflow client against that tracking URI (see
:mod:`bench.mlflow_client_worker`). Another MLflow-speaking server is one more entry in
:data:`PEERS`; mltrail's own MLflow surface is one (``--vs mltrail-mlflow``): the same MLflow
client workloads against ``mltrail server``, with the admin token it prints on its first start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs

BENCH_DIR = Path(__file__).resolve().parent
MLFLOW_VERSION = "3.17.2"  # newest 3.x whose mlflow-skinny is on the registry here
FASTTRACKML_VERSION = "0.6.0"


@dataclass(frozen=True)
class Venv:
    """A virtualenv under ``bench/`` holding one pinned requirement, created on first use."""

    path: Path
    requirement: str

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def ensure(self) -> Path:
        """Create the virtualenv and install the requirement unless already done."""
        marker = self.path / f".installed-{self.requirement}"
        if not marker.exists():
            print(f"creating {self.path} with {self.requirement} (first use only)...", flush=True)
            if not self.python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True)
            pip = [str(self.python), "-m", "pip", "install", "-q", self.requirement]
            subprocess.run(pip, check=True)
            marker.touch()
        return self.python


# The MLflow client every peer is driven with (its own server lives in the same virtualenv).
CLIENT = Venv(BENCH_DIR / ".venv-mlflow", f"mlflow=={MLFLOW_VERSION}")


@dataclass(frozen=True)
class Config:
    """One way to run a peer's server: extra arguments and environment variables."""

    label: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


Command = Callable[[Path, Path, int, Path], list[str]]  # venv (or prefix), database, port, workdir
ClientEnv = Callable[[procs.Server], Mapping[str, str]]


@dataclass(frozen=True)
class Peer:
    """An MLflow-compatible tracking server and the configurations tried for it.

    Attributes:
        name: the ``--vs`` value and results key.
        title: name and version as printed.
        column: its column's heading in the results table.
        venv: where its server is installed (None: this interpreter's environment).
        command: argv of its server for a database file, a port and a scratch directory.
        configs: tried in order, the peer's defaults last; the first that starts also serves
            the untimed setup (a tuned one: MLflow's defaults take minutes more).
        health: a path answering once the server is up.
        durability: how its SQLite commits reach the disk (for the README).
        chart_reads: chart endpoints it is asked for (``bulk_interval``, ``aim_chart``).
        client_env: what the MLflow client needs to reach a started server, e.g.
            ``MLFLOW_TRACKING_TOKEN`` read from its first-start output.
    """

    name: str
    title: str
    column: str
    venv: Venv | None
    command: Command
    configs: Sequence[Config]
    health: str
    durability: str
    chart_reads: tuple[str, ...] = ("bulk_interval",)
    client_env: ClientEnv | None = None

    def ensure_installed(self) -> None:
        if self.venv is not None:
            self.venv.ensure()
        CLIENT.ensure()

    def start(self, config: Config, db_path: Path, workdir: Path) -> procs.Server:
        """Start the server on ``db_path`` with ``config``; return once it answers and idles."""
        port = procs.free_port()
        prefix = Path(sys.prefix) if self.venv is None else self.venv.path
        argv = [*self.command(prefix, db_path, port, workdir), *config.args]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLTRAIL_"))}
        env.update(config.env)
        slug = "".join(c if c.isalnum() else "-" for c in config.label)
        server = procs.Server(f"{self.title} ({config.label})", argv, port,
                              workdir / f"{self.name}-{slug}.log", env=env)  # fmt: skip
        try:
            server.wait_ready(self.health, timeout=180)
            server.wait_idle()  # workers keep importing after the health check answers
        except BaseException:
            server.stop()
            raise
        return server


def _mlflow_command(venv: Path, db: Path, port: int, workdir: Path) -> list[str]:
    return [str(venv / "bin" / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}",
            "--default-artifact-root", str(workdir / "mlflow-artifacts"),
            "--host", procs.LOOPBACK, "--port", str(port)]  # fmt: skip


def _fasttrackml_command(venv: Path, db: Path, port: int, workdir: Path) -> list[str]:
    return [str(venv / "bin" / "fml"), "server", "--database-uri", f"sqlite://{db}",
            "--default-artifact-root", str(workdir / "fasttrackml-artifacts"),
            "--listen-address", f"{procs.LOOPBACK}:{port}"]  # fmt: skip


_NO_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # MLflow 3.x's huey job runner

MLFLOW = Peer(
    name="mlflow",
    title=f"MLflow {MLFLOW_VERSION}",
    column="MLflow",
    venv=CLIENT,
    command=_mlflow_command,
    configs=(
        Config("uvicorn, 1 worker, job runner off", ("--workers", "1"), _NO_JOBS),
        Config("uvicorn, 2 workers, job runner off", ("--workers", "2"), _NO_JOBS),
        Config("uvicorn, 4 workers, job runner off", ("--workers", "4"), _NO_JOBS),
        Config(
            "gunicorn (Flask, no ASGI bridge), 2 workers, job runner off",
            ("--workers", "2", "--gunicorn-opts", ""),
            _NO_JOBS,
        ),
        Config("defaults: uvicorn, 4 workers, job runner on"),
    ),
    health="/health",
    durability="rollback journal, synchronous=FULL (SQLite's defaults through SQLAlchemy): "
    "a commit survives a power loss",
)

FASTTRACKML = Peer(
    name="fasttrackml",
    title=f"FastTrackML {FASTTRACKML_VERSION}",
    column="FastTrackML",
    venv=Venv(BENCH_DIR / ".venv-fasttrackml", f"fasttrackml=={FASTTRACKML_VERSION}"),
    command=_fasttrackml_command,
    configs=(
        Config("20 pooled connections, warn log", ("--log-level", "warn")),
        Config(
            "4 pooled connections, warn log", ("--database-pool-max", "4", "--log-level", "warn")
        ),
        Config("1 connection, warn log", ("--database-pool-max", "1", "--log-level", "warn")),
        Config("defaults: 20 pooled connections, info log"),
    ),
    health="/health",
    durability="WAL, synchronous=NORMAL (the go-sqlite3 driver's default; FastTrackML sets "
    "WAL): the same as mltrail's default",
    chart_reads=("bulk_interval", "aim_chart"),
)


def _mltrail_command(prefix: Path, db: Path, port: int, workdir: Path) -> list[str]:
    return ["env", f"MLTRAIL_HOME={workdir / 'mltrail-home'}", sys.executable, "-m", "mltrail",
            "server", "--db", f"sqlite:///{db}", "--host", procs.LOOPBACK, "--port", str(port)]  # fmt: skip


def _mltrail_token(server: procs.Server) -> dict[str, str]:
    """The admin token the first start printed, kept beside the logs for the later starts."""
    kept = server.log_path.parent / "mltrail-mlflow.token"
    for line in server.log_tail(200_000).splitlines():
        if line.startswith("admin token: "):
            kept.write_text(line.split(": ", 1)[1].strip())
    return {"MLFLOW_TRACKING_TOKEN": kept.read_text()}


MLTRAIL_MLFLOW = Peer(
    name="mltrail-mlflow",
    title="mltrail (MLflow API)",
    column="mltrail via MLflow",
    venv=None,
    command=_mltrail_command,
    # Its one speed knob for these workloads is --workers (1, 2, 4, as MLflow's are tried);
    # ?synchronous=full only trades speed for durability, so it is not a configuration to win
    # with (the full run measures it in its own row), and the artifact switches go unused here.
    configs=(
        Config("2 workers", ("--workers", "2")),
        Config("4 workers", ("--workers", "4")),
        Config("defaults: 1 worker"),
    ),
    health="/healthz",
    durability="WAL, synchronous=NORMAL (mltrail's default)",
    client_env=_mltrail_token,
)

PEERS: dict[str, Peer] = {p.name: p for p in (MLFLOW, FASTTRACKML, MLTRAIL_MLFLOW)}
