"""``mltrail experiments logs`` following a run rides out a server restart: one note on stderr,
then every line exactly once after the server is back; it still gives up after a bounded outage
and fails at once on errors that are not the server being unreachable."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mltrail.api import logs as logs_module
from mltrail.api.logs import UNREACHABLE_NOTE, print_logs
from mltrail.core.errors import NotFoundError, TransportError
from mltrail.core.types import Status
from mltrail.store.http import HttpStore
from mltrail.store.sql import SqlStore
from support.factories import log_batch
from support.servers import ServerProcess


def _lines_until(stream: io.TextIOBase | None, found: list[str], want: str) -> None:
    assert stream is not None
    for line in stream:
        found.append(line)
        if want in line:
            return


def test_follower_rides_out_a_server_restart(server: ServerProcess, tmp_path: Path) -> None:
    with HttpStore(server.url, server.admin_token) as store:
        project = store.create_project("restarted")
        run = store.create_experiment(project.id, display_name="live")  # running, no end
        store.append_logs(project.id, run.experiment_id, log_batch("w", 1, "before 1", "before 2"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env |= {"MLTRAIL_HOME": str(tmp_path), "MLTRAIL_URL": server.url}
    env["MLTRAIL_TOKEN"] = server.admin_token or ""
    command = ["experiments", "logs", "-p", str(project.id), "-e", str(run.experiment_id)]
    follower = subprocess.Popen(
        [sys.executable, "-m", "mltrail", *command, "--disable-colors"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out: list[str] = []
        _lines_until(follower.stdout, out, "before 2")  # it is following now
        server.stop(timeout=20)  # the long poll ends; the next request finds nobody listening
        err: list[str] = []
        _lines_until(follower.stderr, err, UNREACHABLE_NOTE)  # past the store's own retries
        assert follower.poll() is None, "the follower must wait for the server"
        server.start()  # same port, same database
        with HttpStore(server.url, server.admin_token) as store:
            store.append_logs(project.id, run.experiment_id, log_batch("w", 2, "after 1"))
            store.append_logs(project.id, run.experiment_id, log_batch("w", 3, "after 2"))
            store.update_experiment(project.id, run.experiment_id, status=Status.DONE)
        rest, rest_err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0, rest_err
    messages = [line.rsplit(" INFO ", 1)[1].rstrip("\n") for line in out + rest.splitlines()]
    assert messages == ["before 1", "before 2", "after 1", "after 2"]
    assert err + rest_err.splitlines(keepends=True) == [UNREACHABLE_NOTE + "\n"]


class _FakeTime:
    """``time`` for the follower: sleeping moves the clock, no real wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class _Failing:
    """A store whose reads raise ``error`` ``times`` times (every time when None), else ask
    ``store``; ``asked`` keeps the ``after_seq`` of every read."""

    def __init__(self, error: Exception, store: SqlStore | None = None, times: int | None = None):
        self.error, self.store, self.times = error, store, times
        self.asked: list[int] = []
        self.meanwhile: list[Callable[[], object]] = []  # done at the first failure

    def _fail(self, after_seq: int) -> None:
        self.asked.append(after_seq)
        if self.times is None or self.times > 0:
            while self.meanwhile:
                self.meanwhile.pop(0)()
            self.times = None if self.times is None else self.times - 1
            raise self.error

    def read_log_page(self, project_id: int, experiment_id: int, *, after_seq: int) -> object:
        assert self.store is not None
        return self.store.read_log_page(project_id, experiment_id, after_seq=after_seq)

    def tail_logs(
        self, project_id: int, experiment_id: int, *, after_seq: int, wait: float
    ) -> object:
        self._fail(after_seq)
        assert self.store is not None
        return self.store.tail_logs(project_id, experiment_id, after_seq=after_seq, wait=0)


@pytest.fixture
def sql(tmp_path: Path) -> Iterator[SqlStore]:
    """A project 1 with a running experiment 1 holding the lines "one" and "two"."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'mltrail.db'}")
    project = store.create_project("p")
    store.create_experiment(project.id, display_name="r")
    store.append_logs(1, 1, log_batch("w", 1, "one", "two"))
    yield store
    store.close()


def _follow(store: _Failing, out: io.StringIO, err: io.StringIO, **options: float) -> None:
    print_logs(
        store,
        1,
        1,
        out,
        None,
        colours=False,
        follow=True,
        err=err,
        **options,  # type: ignore[arg-type]
    )


def _messages(out: io.StringIO) -> list[str]:
    return [line.rsplit(" ", 1)[1] for line in out.getvalue().splitlines()]


def test_follower_resumes_after_the_last_line_it_printed(
    monkeypatch: pytest.MonkeyPatch, sql: SqlStore
) -> None:
    clock = _FakeTime()
    monkeypatch.setattr(logs_module, "time", clock)
    store = _Failing(TransportError("cannot reach the mltrail server"), sql, times=3)
    store.meanwhile = [  # during the outage
        lambda: sql.append_logs(1, 1, log_batch("w", 2, "three")),
        lambda: sql.update_experiment(1, 1, status=Status.DONE),
    ]
    out, err = io.StringIO(), io.StringIO()
    _follow(store, out, err)
    assert _messages(out) == ["one", "two", "three"]
    assert store.asked == [2, 2, 2, 2, 3]  # every retry after line 2, the last printed
    assert err.getvalue() == UNREACHABLE_NOTE + "\n" and clock.sleeps == [0.5, 1.0, 2.0]


def test_follower_gives_up_after_a_bounded_outage(
    monkeypatch: pytest.MonkeyPatch, sql: SqlStore
) -> None:
    clock = _FakeTime()
    monkeypatch.setattr(logs_module, "time", clock)
    store = _Failing(TransportError("cannot reach the mltrail server at x: refused"), sql)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(TransportError, match="cannot reach"):
        _follow(store, out, err, retry_seconds=30.0)
    assert err.getvalue() == UNREACHABLE_NOTE + "\n"  # said once, not per attempt
    assert clock.sleeps[:5] == [0.5, 1.0, 2.0, 4.0, 5.0] and max(clock.sleeps) == 5.0
    assert clock.now == pytest.approx(30.0) and len(store.asked) == len(clock.sleeps) + 1
    assert _messages(out) == ["one", "two"]


def test_follower_fails_at_once_on_other_errors(
    monkeypatch: pytest.MonkeyPatch, sql: SqlStore
) -> None:
    clock = _FakeTime()
    monkeypatch.setattr(logs_module, "time", clock)
    store = _Failing(NotFoundError("no such experiment", "experiment_id"), sql)
    err = io.StringIO()
    with pytest.raises(NotFoundError):
        _follow(store, io.StringIO(), err)
    assert (store.asked, clock.sleeps, err.getvalue()) == ([2], [], "")


def test_ctrl_c_while_waiting_for_the_server_gets_through(
    monkeypatch: pytest.MonkeyPatch, sql: SqlStore
) -> None:
    # the CLI turns KeyboardInterrupt into exit status 130 (test_cli_logs_interrupt.py)
    clock = _FakeTime()
    clock.sleep = _interrupt  # type: ignore[method-assign]
    monkeypatch.setattr(logs_module, "time", clock)
    store = _Failing(TransportError("cannot reach the mltrail server"), sql)
    with pytest.raises(KeyboardInterrupt):
        _follow(store, io.StringIO(), io.StringIO())
    assert store.asked == [2]


def _interrupt(seconds: float) -> None:
    raise KeyboardInterrupt
