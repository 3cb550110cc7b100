"""The original client's ``logs``: a finished run read page by page (``logs/read``), a running
run followed live over its Firebase-style stream until the run ends, with and without colours,
through ``as_api()`` and through ``ml experiments logs``."""

from __future__ import annotations

import io
import json
import threading
import time

import missinglink_seed as seed
import pytest
from client_env import RESULTS_MARK
from missinglink_seed import Setup

from mltrail.core.types import LogLine, Status
from mltrail.server.missinglink.shapes import log_record, log_timestamp

# what the client's LogFormatter puts before a line (colorama's codes), by level
CLIENT_COLOURS = {
    "INFO": "\x1b[0m\x1b[2m",
    "WARNING": "\x1b[0m\x1b[33m",
    "ERROR": "\x1b[0m\x1b[31m",
}
OTHER_LEVEL_COLOUR = "\x1b[0m\x1b[37m"


def mltrails_own_lines(s: Setup, experiment: int) -> list[LogLine]:
    """The run's lines as mltrail's own ``as_api().experiments.logs`` returns them."""
    return s.mltrail.experiments.logs(
        s.project, experiment, disable_colors=True, file=io.StringIO()
    )


def as_printed_live(line: LogLine, colours: bool) -> str:
    colour = CLIENT_COLOURS.get(line.level, OTHER_LEVEL_COLOUR) if colours else ""
    return f"{colour}{log_timestamp(line)} [{line.stream} {line.level}] {line.message}"


def finished_run(s: Setup, n: int) -> int:
    """A done run of ``n`` lines whose timestamps come in groups of 7 (a page boundary of the
    client's 10,000-line pages falls inside a group)."""
    experiment = seed.experiment(s.mltrail, s.project)
    start = time.time() - 3600
    lines = [
        LogLine(
            start + (i // 7) * 0.001,
            "stderr" if i % 5 == 0 else "stdout",
            "WARNING" if i % 11 == 0 else "INFO",
            f"line {i} of {n}",
        )
        for i in range(n)
    ]
    seed.log_lines(s.mltrail, s.project, experiment, lines)
    return experiment


def test_finished_run_is_read_in_pages_by_timestamp_without_loss_or_doubling(setup: Setup) -> None:
    s = setup
    experiment = finished_run(s, 23_000)
    own = mltrails_own_lines(s, experiment)
    read = s.client.api("logs", project=s.project, experiment=experiment, disable_colors=True)
    assert len(read) == len(own) == 23_000
    assert read == [log_record(line) for line in own]


def test_finished_run_through_the_ml_command(setup: Setup) -> None:
    s = setup
    experiment = finished_run(s, 40)
    done = s.client.ml(
        "-o", "json", "experiments", "logs", "-p", str(s.project), "-e", str(experiment)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        log_record(line) for line in mltrails_own_lines(s, experiment)
    ]


def feed_then_finish(s: Setup, experiment: int) -> threading.Thread:
    """In the background: three more batches of lines while the client follows, then done."""

    def feed() -> None:
        # The client follows only a run that reads running when it first asks: wait for that
        # request in the server's access log (starting the client took over 3 s on a loaded
        # machine, and a run already done was shown in its pager, which waited for a key)
        asked = (
            f'"GET","path":"/_ah/api/missinglink/v1/projects/{s.project}/experiments/{experiment}"'
        )
        deadline = time.monotonic() + 60
        while asked not in s.server.stderr and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # and it has opened the stream
        for batch in range(3):
            lines = [
                LogLine(time.time(), "stdout", "INFO", f"epoch {batch} step {i}") for i in range(4)
            ]
            lines.append(LogLine(time.time(), "stderr", "ERROR", f"epoch {batch} warning: nan"))
            lines.append(LogLine(time.time(), "train", "DEBUG", f"epoch {batch} debug"))
            seed.log_lines(s.mltrail, s.project, experiment, lines)
            time.sleep(0.4)
        s.mltrail.store.update_experiment(s.project, experiment, status=Status.DONE)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def running_run(s: Setup) -> int:
    experiment = s.mltrail.store.create_experiment(s.project, display_name="live").experiment_id
    seed.log_lines(
        s.mltrail, s.project, experiment, [LogLine(time.time(), "stdout", "INFO", "starting")]
    )
    return experiment


def printed_lines(stdout: str) -> list[str]:
    # sseclient prints the (empty) reason of each reconnect: blank lines are not log lines
    return [x for x in stdout.splitlines() if x and not x.startswith(RESULTS_MARK)]


@pytest.mark.parametrize("colours", [True, False], ids=["colours", "no-colours"])
def test_running_run_is_followed_live_until_it_ends(setup: Setup, colours: bool) -> None:
    s = setup
    experiment = running_run(s)
    follower = s.client.start_api(
        "logs", project=s.project, experiment=experiment, disable_colors=not colours
    )
    feeder = feed_then_finish(s, experiment)
    stdout, stderr = follower.communicate(timeout=90)
    feeder.join(10)
    own = mltrails_own_lines(s, experiment)
    assert len(own) == 1 + 3 * 6
    assert printed_lines(stdout) == [as_printed_live(line, colours) for line in own]
    assert follower.returncode == 0
    # the stream ended with the run: the client's reconnect was answered 410 (it was made to
    # follow forever and prints that HTTPError from its log thread)
    assert "410 Client Error" in stderr
    assert f'{RESULTS_MARK}[{{"result": null}}]' in stdout


def test_running_run_followed_by_the_ml_command(setup: Setup) -> None:
    s = setup
    experiment = running_run(s)
    follower = s.client.start_ml(
        "experiments", "logs", "-p", str(s.project), "-e", str(experiment), "--disable-colors"
    )
    feeder = feed_then_finish(s, experiment)
    stdout, stderr = follower.communicate(timeout=90)
    feeder.join(10)
    own = mltrails_own_lines(s, experiment)
    assert printed_lines(stdout) == [as_printed_live(line, False) for line in own]
    assert follower.returncode == 0, stderr
