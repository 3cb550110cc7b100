"""Console capture in this process: the Python-level tee (pytest's capture makes fds unusable
here, so the fallback is what runs), logging records, progress states, settings.

The file-descriptor level, the default, is proved with real training processes in
``test_console_process.py``.
"""

from __future__ import annotations

import io
import itertools
import logging
import sys

import pytest

from mltrail.config import Settings
from mltrail.core.types import LogLine
from mltrail.sdk.console import ConsoleCapture
from mltrail.sdk.console.lines import Echoes, LineCutter
from mltrail.sdk.experiment import start


def _fake_console(monkeypatch: pytest.MonkeyPatch) -> tuple[io.StringIO, io.StringIO]:
    """Called in the test body: pytest puts its own streams back after fixtures are set up."""
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    return out, err


def _got(lines: list[LogLine]) -> list[tuple[str, str, str]]:
    return [(ln.stream, ln.level, ln.message) for ln in lines]


def test_python_level_capture_tees_lines_and_restores(monkeypatch):
    out, err = _fake_console(monkeypatch)
    lines: list[LogLine] = []
    capture = ConsoleCapture(lines.append, clock=lambda: 42.0).start()
    assert capture.level == "python"  # a StringIO has no file descriptor
    print("hello", "world")
    sys.stdout.write("partial ")
    sys.stdout.write("line\nprogress 10%\rprogress 100%\n")
    print("oops", file=sys.stderr)
    logging.getLogger("data.loader").error("bad shard %d", 7)
    sys.stdout.write("no newline at the end")
    capture.stop()
    assert sys.stdout is out and sys.stderr is err
    assert out.getvalue() == (
        "hello world\npartial line\nprogress 10%\rprogress 100%\nno newline at the end"
    )
    assert err.getvalue() == "oops\n"  # pytest's log handler takes the record, not stderr
    assert _got(lines) == [
        ("stdout", "INFO", "hello world"),
        ("stdout", "INFO", "partial line"),
        ("stdout", "INFO", "progress 100%"),
        ("stderr", "INFO", "oops"),  # a stderr line is not a warning
        ("data.loader", "ERROR", "bad shard 7"),  # once: its console echo is not a stderr line
        ("stdout", "INFO", "no newline at the end"),
    ]
    assert lines[0].time == 42.0


def test_own_and_dependency_records_are_never_recorded(monkeypatch):
    _fake_console(monkeypatch)
    lines: list[LogLine] = []
    capture = ConsoleCapture(lines.append).start()
    try:
        for name in ("mltrail.sdk", "httpx", "httpcore.connection", "alembic.runtime.migration"):
            logging.getLogger(name).error("internal")
        logging.getLogger("urllib3").error("internal")
        logging.getLogger("sqlalchemy.engine").error("internal")
        logging.getLogger("user").error("external")
    finally:
        capture.stop()
    assert _got(lines) == [("user", "ERROR", "external")]


class _StderrForwarder:
    """A handler stream like MLflow's: no file, it writes to whatever ``sys.stderr`` is now.
    MLflow puts one on the alembic and sqlalchemy loggers when its client opens a database."""

    def write(self, text: str) -> None:
        sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def test_dependency_records_printed_through_a_forwarding_stream_are_not_recorded(monkeypatch):
    _, err = _fake_console(monkeypatch)
    handler = logging.StreamHandler(_StderrForwarder())  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("alembic.runtime.migration", "user")]
    for logger in loggers:
        logger.addHandler(handler)
    lines: list[LogLine] = []
    capture = ConsoleCapture(lines.append).start()
    try:
        loggers[0].error("internal")
        loggers[1].error("external")
    finally:
        capture.stop()
        for logger in loggers:
            logger.removeHandler(handler)
    assert "ERROR alembic.runtime.migration: internal" in err.getvalue()  # still printed
    assert _got(lines) == [("user", "ERROR", "external")]  # once, and no stderr echo


def test_a_handler_added_after_start_prints_its_records_which_are_recorded_once(monkeypatch):
    _, err = _fake_console(monkeypatch)
    lines: list[LogLine] = []
    log = logging.getLogger("trainer.progress")
    capture = ConsoleCapture(lines.append).start()
    handler = logging.StreamHandler(sys.stderr)  # the tee: its output comes back to capture
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("epoch %d", 3)
        logging.getLogger("httpx").warning("HTTP Request: POST /logs")  # printed, not recorded
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
        capture.stop()
    assert "INFO trainer.progress: epoch 3\n" in err.getvalue()
    assert _got(lines) == [("trainer.progress", "INFO", "epoch 3")]


def test_exception_records_keep_their_traceback(monkeypatch):
    _fake_console(monkeypatch)
    lines: list[LogLine] = []
    capture = ConsoleCapture(lines.append).start()
    try:
        try:
            raise KeyError("shard-7")
        except KeyError:
            logging.getLogger("loader").exception("could not load")
    finally:
        capture.stop()
    [line] = lines
    assert (line.stream, line.level) == ("loader", "ERROR")
    assert line.message.startswith("could not load\nTraceback (most recent call last):")
    assert line.message.endswith("KeyError: 'shard-7'")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_redraws_are_coalesced_to_one_state_per_second_and_the_last():
    clock = _Clock()
    cutter = LineCutter("stderr", Echoes(), clock)
    sent: list[tuple[float, str]] = []
    for step in range(51):  # a bar redrawn every 0.1 s for 5 s, tqdm style: "\r" + state
        sent += [(ln.time, ln.message) for ln in cutter.feed(f"\r{step * 2}%|bar|")]
        clock.now += 0.1
    sent += [(ln.time, ln.message) for ln in cutter.feed("\n")]
    states = [message for _, message in sent]
    assert states[0] == "0%|bar|"  # the first state goes at once: a follower sees the bar start
    assert states[-1] == "100%|bar|"
    assert len(states) == len(set(states))
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(sent[:-1])]  # the last goes anyway
    assert all(gap >= 1.0 - 1e-9 for gap in gaps), gaps
    assert 5 <= len(states) <= 7


def test_a_bar_left_idle_shows_its_state_and_print_end_cr_keeps_the_last():
    clock = _Clock()
    cutter = LineCutter("stdout", Echoes(), clock)
    assert [ln.message for ln in cutter.feed("10%\r")] == ["10%"]
    clock.now += 0.2
    assert cutter.feed("20%\r") == []  # within the second: coalesced
    clock.now += 1.0
    assert [ln.message for ln in cutter.tick()] == ["20%"]  # idle: what the screen shows
    assert [ln.message for ln in cutter.feed("30%\r\n")] == ["30%"]
    assert [ln.message for ln in cutter.feed("plain\n")] == ["plain"]
    assert [ln.message for ln in cutter.feed("\r \r\n")] == []  # a cleared line is no line


def test_an_unterminated_line_is_cut_at_the_message_limit():
    cutter = LineCutter("stdout", Echoes())
    lines = cutter.feed("x" * 70_000)
    assert [len(ln.message) for ln in lines] == [65_536]
    assert [len(ln.message) for ln in cutter.finish()] == [70_000 - 65_536]


def test_capture_settings_from_the_environment():
    assert (Settings.from_env({}).capture_console, Settings.from_env({}).capture_fds) == (
        True,
        True,
    )
    python = Settings.from_env({"MLTRAIL_CAPTURE": "python"})
    assert (python.capture_console, python.capture_fds) == (True, False)
    assert Settings.from_env(python.to_env()).capture_fds is False  # a child gets the same
    assert not Settings.from_env({"MLTRAIL_CAPTURE": "off"}).capture_console
    assert not Settings.from_env({"MLTRAIL_NO_CAPTURE": "1"}).capture_console
    with pytest.raises(ValueError, match="MLTRAIL_CAPTURE must be one of fd, python, off"):
        Settings.from_env({"MLTRAIL_CAPTURE": "pipes"})


def test_capture_console_false_leaves_streams_alone(settings, store):
    original = sys.stdout
    with start("quiet", settings=settings.with_(capture_console=False)) as exp:
        assert sys.stdout is original
        print("not captured")
    assert store.read_logs(exp.project_id, exp.experiment_id) == []
