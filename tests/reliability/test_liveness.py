"""Killed runs do not stay running: real trainer processes (SDK defaults, console capture on),
SIGKILLed or idle, in embedded mode and against real servers on SQLite and PostgreSQL, with
``MLTRAIL_CRASH_AFTER`` set small; followers (``as_api().experiments.logs``) in this process.

Each test prints its figures (run with ``-s``): when the run read crashed after the kill, when
the follower returned. The rules themselves are checked exactly, with an injected clock, in
tests/store/test_liveness_contract.py.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mltrail.api import Api
from mltrail.config import Settings
from mltrail.core.liveness import stop_grace
from support.clients import rest_client
from support.servers import ServerProcess
from support.trainers import launch_trainer

CRASH_AFTER = 3.0
PROCESS_TIMEOUT = 120

TRAINER = textwrap.dedent(
    """
    import sys, time
    import mltrail
    with mltrail.start("liveness-" + sys.argv[1], sys.argv[1]) as exp:
        print("hello from the trainer", flush=True)
        exp.log({"loss": 1.0})
        print("STARTED", exp.project_id, exp.experiment_id, flush=True)
        time.sleep(float(sys.argv[2]))
        print("slept", flush=True)
    print("DONE", flush=True)
    """
)


@dataclass
class Mode:
    """Where runs are recorded: the environment of trainers and CLI, the follower's Settings."""

    name: str
    env: dict[str, str]
    server: ServerProcess | None

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


def _mode(name: str, home: Path, crash_after: float, server: ServerProcess | None) -> Mode:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_HOME": str(home), "MLTRAIL_CRASH_AFTER": str(crash_after)}
    env["PYTHONUNBUFFERED"] = "1"
    if server is not None:
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.admin_token or ""}
    return Mode(name, env, server)


@pytest.fixture(scope="module")
def judging_servers(
    module_migrated_urls: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str, float], ServerProcess]]:
    """``judging(database, crash_after)``: a real server on a migrated database of its own that
    reads a run crashed ``crash_after`` s after its last heartbeat, started when first asked for
    and shared by the module's tests (a start costs seconds; each test's runs are in a project
    of their own, named after the run)."""
    started: dict[tuple[str, float], ServerProcess] = {}

    def judging(database: str, crash_after: float) -> ServerProcess:
        key = (database, crash_after)
        if key not in started:
            home = tmp_path_factory.mktemp("judging-server")
            env = {"MLTRAIL_CRASH_AFTER": str(crash_after)}
            started[key] = ServerProcess(module_migrated_urls(database), home, env=env)
            started[key].start()
        return started[key]

    yield judging
    for server in started.values():
        server.close()


def make_mode(request: pytest.FixtureRequest, tmp_path: Path, crash_after: float) -> Mode:
    """Embedded mode, or a real server on SQLite or PostgreSQL judging after ``crash_after``."""
    if request.param == "embedded":
        return _mode("embedded", tmp_path / "home", crash_after, None)
    server = request.getfixturevalue("judging_servers")(request.param, crash_after)
    return _mode(request.param, tmp_path / "home", crash_after, server)


@pytest.fixture(params=["embedded", "sqlite", "postgres"])
def mode(request: pytest.FixtureRequest, tmp_path: Path) -> Mode:
    return make_mode(request, tmp_path, CRASH_AFTER)


def launch(mode: Mode, name: str, sleep: float) -> tuple[subprocess.Popen[str], int, int]:
    """A trainer that logs, prints STARTED and sleeps ``sleep`` seconds; its experiment."""
    return launch_trainer(TRAINER, [name, str(sleep)], mode.env)


class Follower(threading.Thread):
    """``as_api().experiments.logs(p, e)`` following in a thread, as a user's script does."""

    def __init__(self, settings: Settings, p: int, e: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.p, self.e = settings, p, e
        self.out = io.StringIO()
        self.lines: list = []
        self.returned_at: float | None = None

    def run(self) -> None:
        with Api.from_settings(self.settings) as api:
            self.lines = api.experiments.logs(self.p, self.e, file=self.out)
        self.returned_at = time.monotonic()

    @property
    def output(self) -> list[str]:
        return self.out.getvalue().splitlines()


def status_of(mode: Mode, p: int, e: int) -> dict:
    with Api.from_settings(mode.settings) as api:
        return api.experiments.get(p, e)


def cli(mode: Mode, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mltrail", *args],
        env=mode.env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def wait_for_status(mode: Mode, p: int, e: int, wanted: str, timeout: float) -> float:
    """Seconds until the experiment reads ``wanted`` (AssertionError after ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if status_of(mode, p, e)["status"] == wanted:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"still {status_of(mode, p, e)['status']} after {timeout} s")


def test_a_sigkilled_trainer_reads_crashed_and_its_follower_returns(mode: Mode) -> None:
    proc, p, e = launch(mode, "killed", 600)
    follower = Follower(mode.settings, p, e)
    follower.start()
    try:
        time.sleep(1.5 * CRASH_AFTER)  # longer than crash_after: its heartbeats keep it running
        assert status_of(mode, p, e)["status"] == "running"
        assert follower.is_alive()
    finally:
        proc.kill()
        proc.wait(10)
    killed = time.monotonic()
    crashed_after = wait_for_status(mode, p, e, "crashed", CRASH_AFTER + 30)
    follower.join(30)
    assert not follower.is_alive(), "the follower of a crashed run must return"
    assert follower.returned_at is not None
    returned_after = follower.returned_at - killed
    print(
        f"\n{mode.name}: crash_after {CRASH_AFTER:g} s; SIGKILLed run read crashed after "
        f"{crashed_after:.1f} s, follower returned after {returned_after:.1f} s"
    )
    assert crashed_after <= CRASH_AFTER + 10  # judged from its last heartbeat, before the kill
    assert "hello from the trainer" in [line.message for line in follower.lines]
    assert follower.output[-1].startswith("experiment crashed: no heartbeat since ")

    # the status and the last heartbeat, everywhere statuses are shown
    record = status_of(mode, p, e)
    assert record["status"] == "crashed" and record["last_heartbeat"] is not None
    with Api.from_settings(mode.settings) as api:
        (listed,) = api.experiments.list(p)
    assert (listed["status"], listed["last_heartbeat"]) == ("crashed", record["last_heartbeat"])
    rows = json.loads(cli(mode, "experiments", "list", "-p", str(p), "-o", "json").stdout)
    assert (rows[0]["status"], rows[0]["last_heartbeat"]) == ("crashed", record["last_heartbeat"])
    table = cli(mode, "experiments", "list", "-p", str(p)).stdout
    assert "crashed" in table and "last_heartbeat" in table
    followed = cli(mode, "experiments", "logs", "-p", str(p), "-e", str(e)).stdout
    assert followed.splitlines()[-1].startswith("experiment crashed: no heartbeat since ")
    if mode.server is not None:
        with rest_client(mode.server.url, mode.server.admin_token) as rest:
            got = rest.get(f"/projects/{p}/experiments/{e}").json()
            assert got["status"] == "crashed" and isinstance(got["last_heartbeat"], float)
            tail = rest.get(f"/projects/{p}/experiments/{e}/logs", params={"wait": 20}).json()
            assert (tail["status"], tail["last_heartbeat"]) == ("crashed", got["last_heartbeat"])


@pytest.fixture(params=["embedded", "sqlite"])
def idle_mode(request: pytest.FixtureRequest, tmp_path: Path) -> Mode:
    return make_mode(request, tmp_path, CRASH_AFTER)


def test_a_healthy_idle_run_stays_running_while_it_heartbeats(idle_mode: Mode) -> None:
    mode, idle = idle_mode, 2.5 * CRASH_AFTER  # crash_after passes twice without a line logged
    proc, p, e = launch(mode, "idle", idle)
    follower = Follower(mode.settings, p, e)
    follower.start()
    seen: set[str] = set()
    while proc.poll() is None:  # sleeping 2.5 times crash_after without logging anything
        seen.add(status_of(mode, p, e)["status"])
        time.sleep(0.2)
    assert proc.returncode == 0, proc.stderr.read()  # type: ignore[union-attr]
    follower.join(30)
    print(f"\n{mode.name}: idle {idle:g} s with crash_after {CRASH_AFTER:g} s, statuses {seen}")
    assert "crashed" not in seen and "running" in seen
    assert status_of(mode, p, e)["status"] == "done"
    assert not follower.is_alive()
    assert not any(line.startswith("experiment crashed") for line in follower.output)
    assert [line.message for line in follower.lines][-1] == "slept"


# long enough that stop, not crash detection, ends the follower: the stop grace is 3 of its
# 3 s heartbeats (9 s), 3 s sooner than crash detection would end it
STOP_CRASH_AFTER = 12.0


@pytest.fixture(params=["embedded", "sqlite", "postgres"])
def stop_mode(request: pytest.FixtureRequest, tmp_path: Path) -> Mode:
    return make_mode(request, tmp_path, STOP_CRASH_AFTER)


def test_stopping_a_dead_run_ends_its_follower(stop_mode: Mode) -> None:
    mode = stop_mode
    proc, p, e = launch(mode, "dead", 600)
    time.sleep(1)
    proc.kill()
    proc.wait(10)
    killed = time.monotonic()
    follower = Follower(mode.settings, p, e)
    follower.start()
    said = cli(mode, "experiments", "stop", "-p", str(p), "-e", str(e)).stdout
    assert "stop requested" in said
    follower.join(STOP_CRASH_AFTER + 30)
    assert not follower.is_alive() and follower.returned_at is not None
    returned_after = follower.returned_at - killed
    grace = stop_grace(STOP_CRASH_AFTER)
    print(
        f"\n{mode.name}: stop of a SIGKILLed run (crash_after {STOP_CRASH_AFTER:g} s, grace "
        f"{grace:g} s): follower returned {returned_after:.1f} s after the kill"
    )
    # the stop request shortened the wait from crash_after to a few missed heartbeats
    assert returned_after < STOP_CRASH_AFTER
    assert follower.output[-1].startswith("experiment crashed: no heartbeat since ")
    # asking again records it stopped for good
    said = cli(mode, "experiments", "stop", "-p", str(p), "-e", str(e)).stdout
    assert "(status stopped)" in said
    assert status_of(mode, p, e)["status"] == "stopped"
