"""Load test: many concurrent writers against real mltrail servers on loopback, nothing lost.

    python -m bench.load [--writers 50] [--seconds 60] [--pg] [--json PATH]

Each writer is a thread with its own HTTP client and experiment, sending a metric batch of
``--batch`` points every ``--interval`` seconds for ``--seconds`` (the SDK's writer flushes
once a second; 500 points a second is a fast loop logging several metrics per step).
Without ``--pg`` one server runs on a fresh SQLite file; with ``--pg`` two server processes
share one fresh PostgreSQL database and the writers are split between them (stateless servers
scale out over PostgreSQL). Afterwards every experiment is read back exactly: stored must equal acknowledged,
with no duplicate iteration. Prints a table and one JSON line (``RESULT {...}``); exit status 1
when any error, loss or duplicate was seen. Bounded: loopback only, fixed duration, databases
created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.procs import LOOPBACK, Server, free_port

PG_ADMIN_URL = os.environ.get("MLTRAIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN_WAIT_SECONDS = 30.0


@dataclass
class WriterStats:
    """What one writer did: batches/points sent and acknowledged, errors, ack latencies."""

    project_id: int = 0
    experiment_id: int = 0
    server: str = ""
    batches: int = 0
    sent: int = 0
    acknowledged: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


@dataclass
class LoadResult:
    """The run's totals; ``ok`` when nothing failed, was lost or doubled."""

    writers: int
    servers: int
    database: str
    seconds: float
    sent: int
    acknowledged: int
    stored: int
    duplicates: int
    errors: int
    batches: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    points_per_second: float
    acknowledged_per_server: list[int]
    error_samples: list[str]

    @property
    def ok(self) -> bool:
        return (
            self.errors == 0
            and self.duplicates == 0
            and self.sent == self.acknowledged == self.stored
        )


def _write(url: str, token: str, project_id: int, stats: WriterStats, args: Namespace) -> None:
    from mltrail.core.types import MetricBatch, SeriesChunk
    from mltrail.store.http import HttpStore

    with HttpStore(url, token, timeout=60) as store:
        exp = store.create_experiment(project_id, display_name=f"writer-{uuid.uuid4().hex[:6]}")
        stats.project_id, stats.experiment_id, stats.server = project_id, exp.experiment_id, url
        client_id, n = uuid.uuid4().hex, args.batch
        deadline = time.monotonic() + args.seconds
        iteration = 0
        while time.monotonic() < deadline:
            its = np.arange(iteration, iteration + n, dtype=np.int64)
            chunk = SeriesChunk(
                "loss", "train", its, np.full(n, -1), np.sin(its / 100.0), np.full(n, time.time())
            )
            stats.batches += 1
            stats.sent += n
            t0 = time.perf_counter()
            try:
                store.append_points(
                    project_id, exp.experiment_id, MetricBatch(client_id, stats.batches, (chunk,))
                )
            except Exception as exc:  # counted and reported, the writer goes on
                stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                stats.latencies.append(time.perf_counter() - t0)
                stats.acknowledged += n
            iteration += n
            time.sleep(max(0.0, args.interval - (time.perf_counter() - t0)))


def run_load(urls: list[str], token: str, args: Namespace, database: str) -> LoadResult:
    """Run ``args.writers`` writers split over ``urls`` for ``args.seconds``; check the store.

    Args:
        urls: running servers sharing one database.
        token: an admin token valid on all of them.
        args: writers, seconds, batch, interval.
        database: ``sqlite`` or ``postgresql`` (reported only).

    Returns:
        Totals, with stored points and duplicates read back from the first server.
    """
    from mltrail.store.http import HttpStore

    with HttpStore(urls[0], token) as admin:
        project = admin.create_project(f"load-{uuid.uuid4().hex[:6]}")
    stats = [WriterStats() for _ in range(args.writers)]
    threads = [
        threading.Thread(target=_guarded, args=(urls[i % len(urls)], token, project.id, s, args))
        for i, s in enumerate(stats)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    stored, duplicates = _read_back(urls[0], token, stats)
    result = _totals(stats, args, len(urls), database, elapsed, stored, duplicates)
    result.acknowledged_per_server = [
        sum(s.acknowledged for s in stats if s.server == url) for url in urls
    ]
    return result


def _guarded(url: str, token: str, project_id: int, stats: WriterStats, args: Namespace) -> None:
    try:
        _write(url, token, project_id, stats, args)
    except Exception as exc:  # e.g. the experiment could not be created
        stats.errors.append(f"writer died: {type(exc).__name__}: {exc}"[:300])


def _read_back(url: str, token: str, stats: list[WriterStats]) -> tuple[int, int]:
    from mltrail.store.http import HttpStore

    stored = duplicates = 0
    with HttpStore(url, token, timeout=120) as reader:
        for s in stats:
            if not s.experiment_id:
                continue
            series = reader.read_series(s.project_id, s.experiment_id, "loss", "train")
            its = series.iterations
            stored += len(its)
            duplicates += len(its) - len(np.unique(its))
    return stored, duplicates


def _totals(
    stats: list[WriterStats],
    args: Namespace,
    servers: int,
    database: str,
    elapsed: float,
    stored: int,
    duplicates: int,
) -> LoadResult:
    latencies = np.array([x for s in stats for x in s.latencies] or [0.0]) * 1000
    errors = [e for s in stats for e in s.errors]
    acknowledged = sum(s.acknowledged for s in stats)
    return LoadResult(
        writers=args.writers,
        servers=servers,
        database=database,
        seconds=round(elapsed, 1),
        sent=sum(s.sent for s in stats),
        acknowledged=acknowledged,
        stored=stored,
        duplicates=duplicates,
        errors=len(errors),
        batches=sum(s.batches for s in stats),
        p50_ms=round(float(np.percentile(latencies, 50)), 1),
        p99_ms=round(float(np.percentile(latencies, 99)), 1),
        max_ms=round(float(latencies.max()), 1),
        points_per_second=round(acknowledged / elapsed, 0) if elapsed else 0.0,
        acknowledged_per_server=[],
        error_samples=errors[:5],
    )


# --- servers and databases ------------------------------------------------------------------------
Namespace = argparse.Namespace


def _start_server(db_url: str, home: Path, name: str) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env["MLTRAIL_HOME"] = str(home)
    argv = [sys.executable, "-m", "mltrail", "server", "--db", db_url]
    argv += ["--host", LOOPBACK, "--port", str(port)]
    server = Server(name, argv, port, home / f"{name}.log", env=env)
    server.wait_ready("/healthz")
    return server


def _admin_token(server: Server) -> str:
    deadline = time.monotonic() + TOKEN_WAIT_SECONDS
    while time.monotonic() < deadline:
        for line in server.log_path.read_text(errors="replace").splitlines():
            if line.startswith("admin token: "):
                return line.split(": ", 1)[1].strip()
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} printed no admin token:\n{server.log_tail()}")


@contextlib.contextmanager
def _pg_database() -> Iterator[str]:
    import psycopg

    name = f"mltrail_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: Namespace) -> LoadResult:
    """Start the servers the options ask for, run the load, stop everything."""
    with contextlib.ExitStack() as stack:
        if args.keep:
            home = args.keep
            home.mkdir(parents=True, exist_ok=True)
        else:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mltrail-load-")))
        if args.pg:
            db_url, database, count = stack.enter_context(_pg_database()), "postgresql", 2
        else:
            db_url, database, count = f"sqlite:///{home / 'load.db'}", "sqlite", 1
        # one after the other: the first applies the migrations and makes the admin token
        servers = [
            stack.enter_context(_start_server(db_url, home, f"server-{i}")) for i in range(count)
        ]
        token = _admin_token(servers[0])
        result = run_load([s.url for s in servers], token, args, database)
        if not result.ok:  # the servers' own words, without the access log's JSON lines
            for server in servers:
                text = server.log_path.read_text(errors="replace").splitlines()
                tail = [x for x in text if not x.startswith("{")][-40:]
                print(f"--- {server.name} log ---", *tail, sep="\n", file=sys.stderr)
        return result


def render(result: LoadResult) -> str:
    """A short table and the ``RESULT`` JSON line."""
    rows = [
        ("writers x servers", f"{result.writers} x {result.servers} ({result.database})"),
        ("duration", f"{result.seconds} s"),
        ("points sent / acknowledged / stored", f"{result.sent} / {result.acknowledged} / "
         f"{result.stored}"),
        ("duplicates / errors", f"{result.duplicates} / {result.errors}"),
        ("batches", str(result.batches)),
        ("ack latency p50 / p99 / max", f"{result.p50_ms} / {result.p99_ms} / {result.max_ms} ms"),
        ("throughput", f"{result.points_per_second:.0f} points/s"),
        ("acknowledged per server", " / ".join(map(str, result.acknowledged_per_server))),
        ("verdict", "OK" if result.ok else "FAILED"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
    lines += [f"  error: {e}" for e in result.error_samples]
    lines.append("RESULT " + json.dumps({**asdict(result), "ok": result.ok}))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--writers", type=int, default=50, help="concurrent writers [50]")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long they write [60]")
    parser.add_argument("--batch", type=int, default=500, help="points per batch [500]")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between a writer's batches [1.0]"
    )
    parser.add_argument("--pg", action="store_true", help="two servers on one PostgreSQL db")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--keep", type=Path, default=None, help="keep databases and logs here")
    args = parser.parse_args(argv)
    if args.writers < 1 or args.seconds <= 0 or args.batch < 1:
        parser.error("--writers, --seconds and --batch must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(render(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps({**asdict(result), "ok": result.ok}, indent=2) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
