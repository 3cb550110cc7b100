"""Console capture as users have it: real training processes, the defaults on (fd level).

Each script prints ``STARTED <project> <experiment>`` first; the test then reads the run's log
lines from the store and compares them with what the process printed on its real stdout/stderr.
"""

from __future__ import annotations

import fcntl
import io
import itertools
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import mltrail
from mltrail.config import Settings
from mltrail.core.types import LogLine, Status
from mltrail.store import open_store
from mltrail.store.http import HttpStore
from support.servers import ServerProcess

TIMEOUT = 120


def _env(server: ServerProcess | None = None) -> dict[str, str]:
    """The test's environment (its MLTRAIL_HOME included), optionally pointing at a server."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)  # Python's own buffering, as a user has it
    if server is not None:
        env |= {"MLTRAIL_URL": server.url, "MLTRAIL_TOKEN": server.admin_token or ""}
    return env


def _script(tmp_path: Path, code: str) -> str:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(code))
    return str(path)


def _run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, script], env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _ids(stdout: str) -> tuple[int, int]:
    first = stdout.split("STARTED ", 1)[1].split("\n", 1)[0].split()
    return int(first[0]), int(first[1])


def _logs(project: int, experiment: int, server: ServerProcess | None = None) -> list[LogLine]:
    if server is not None:
        with HttpStore(server.url, server.admin_token) as store:
            return _read_all(store, project, experiment)
    with open_store(Settings.from_env()) as store:
        return _read_all(store, project, experiment)


def _read_all(store, project: int, experiment: int) -> list[LogLine]:
    lines: list[LogLine] = []
    while page := store.read_logs(project, experiment, after_seq=lines[-1].seq if lines else 0):
        lines += page
    return lines


def _lines(logs: list[LogLine]) -> list[tuple[str, str, str]]:
    return [(ln.stream, ln.level, ln.message) for ln in logs]


def test_child_processes_and_raw_fd_writes_are_captured_and_still_printed(tmp_path):
    script = _script(
        tmp_path,
        """
        import os, subprocess, sys
        import mltrail

        before = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
        with mltrail.start("fd-capture") as exp:
            print("STARTED", exp.project_id, exp.experiment_id)
            print("from print", flush=True)  # text before bytes, as without capture
            sys.stdout.buffer.write(b"from sys.stdout.buffer\\n")
            sys.stdout.flush()
            os.write(1, b"from os.write\\n")
            os.system("echo from os.system")
            subprocess.run(["echo", "from subprocess"], check=True)
            subprocess.run(["sh", "-c", "echo from a child on stderr >&2"], check=True)
            sys.stdout.write("last words without a newline")
        after = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
        print("| after the end, fds restored:", after == before)
        """,
    )
    done = _run(script, _env())
    project, experiment = _ids(done.stdout)
    assert done.stdout == (
        f"STARTED {project} {experiment}\nfrom print\nfrom sys.stdout.buffer\nfrom os.write\n"
        "from os.system\nfrom subprocess\nlast words without a newline"
        "| after the end, fds restored: True\n"
    )
    assert done.stderr == "from a child on stderr\n"
    assert _lines(_logs(project, experiment)) == [
        ("stdout", "INFO", f"STARTED {project} {experiment}"),
        ("stdout", "INFO", "from print"),
        ("stdout", "INFO", "from sys.stdout.buffer"),
        ("stdout", "INFO", "from os.write"),
        ("stdout", "INFO", "from os.system"),
        ("stdout", "INFO", "from subprocess"),
        ("stderr", "INFO", "from a child on stderr"),
        ("stdout", "INFO", "last words without a newline"),
    ]


def test_a_tqdm_bar_is_stored_as_coalesced_states_a_follower_sees_move(tmp_path):
    script = _script(
        tmp_path,
        """
        import sys, time
        import mltrail
        from tqdm import tqdm

        with mltrail.start("bars") as exp:
            print("STARTED", exp.project_id, exp.experiment_id, flush=True)
            bar = tqdm(total=40, mininterval=0, ncols=70)
            for _ in range(20):
                time.sleep(0.15)
                bar.update(1)
            print("WAITING", flush=True)  # the bar stays on 20/40, no newline yet
            sys.stdin.readline()
            for _ in range(20):
                time.sleep(0.01)
                bar.update(1)
            bar.close()
        """,
    )
    proc = subprocess.Popen(
        [sys.executable, script],
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # bytes: text mode would turn the bar's \r into \n
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        project, experiment = _ids(proc.stdout.readline().decode())
        assert proc.stdout.readline() == b"WAITING\n"
        deadline = time.monotonic() + 30
        live: list[str] = []
        while not live and time.monotonic() < deadline:  # the bar's line has not ended yet
            live = [ln.message for ln in _logs(project, experiment) if "20/40" in ln.message]
            time.sleep(0.2)
        assert live, "a follower never saw the idle bar's state before its line ended"
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        stderr = proc.communicate(timeout=TIMEOUT)[1].decode()
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert "\r" in stderr and "40/40" in stderr  # still drawn locally as before
    bar = [ln for ln in _logs(project, experiment) if "/40" in ln.message]
    assert {(ln.stream, ln.level) for ln in bar} == {("stderr", "INFO")}
    assert "100%" in bar[-1].message and "40/40" in bar[-1].message
    assert not any("\r" in ln.message for ln in bar)
    states = [ln.message.split("|")[-1].split()[0] for ln in bar]  # "7/40", ...
    assert states[0] == "0/40" and "20/40" in states
    assert len({ln.message for ln in bar}) == len(bar)  # no state twice
    assert 4 <= len(states) <= 12, states  # about one per second over 3 s, + idle, + last
    times = [ln.time for ln in bar[:-1]]  # the last state goes whenever the line ends
    assert all(b - a >= 0.99 for a, b in itertools.pairwise(times)), times


def test_http_client_lines_never_reach_the_run_in_server_mode(tmp_path, shared_server):
    server = shared_server  # its own run's logs are read back: no server of its own needed
    script = _script(
        tmp_path,
        """
        import logging, time
        logging.basicConfig(level=logging.INFO)
        import mltrail

        log = logging.getLogger("train")
        with mltrail.start("quiet-http") as exp:
            print("STARTED", exp.project_id, exp.experiment_id, flush=True)
            for step in range(8):  # about 4 s: four uploads or more
                exp.log({"loss": 1.0 / (step + 1)})
                log.info("step %d", step)
                time.sleep(0.5)
        """,
    )
    done = _run(script, _env(server))
    project, experiment = _ids(done.stdout)
    assert "HTTP Request" not in done.stderr
    assert "INFO:train:step 7" in done.stderr  # the script's own records still print
    logs = _lines(_logs(project, experiment, server))
    assert not [line for line in logs if line[0].startswith(("httpx", "httpcore"))]
    assert not [line for line in logs if "HTTP Request" in line[2]]
    assert [line for line in logs if line[0] != "stdout"] == [
        ("train", "INFO", f"step {step}") for step in range(8)
    ]  # each record once, and its console echo not again as a stderr line


def test_embedded_start_prints_and_stores_no_alembic_lines(tmp_path):
    script = _script(
        tmp_path,
        """
        import logging
        logging.basicConfig(level=logging.INFO)
        import mltrail

        with mltrail.start("fresh-database") as exp:
            print("STARTED", exp.project_id, exp.experiment_id, flush=True)
            logging.getLogger("train").info("ready")
        """,
    )
    env = _env() | {"MLTRAIL_HOME": str(tmp_path / "fresh")}  # the migrations run at start
    done = _run(script, env)
    project, experiment = _ids(done.stdout)
    assert "alembic" not in done.stderr.lower()
    assert done.stderr == "INFO:train:ready\n"
    with open_store(Settings.from_env({"MLTRAIL_HOME": env["MLTRAIL_HOME"]})) as store:
        logs = _lines(store.read_logs(project, experiment))
    assert logs == [
        ("stdout", "INFO", f"STARTED {project} {experiment}"),
        ("train", "INFO", "ready"),
    ]


def test_logging_configured_after_start_still_prints_and_is_recorded_once(tmp_path):
    script = _script(
        tmp_path,
        """
        import logging
        import mltrail

        with mltrail.start("late-logging") as exp:
            print("STARTED", exp.project_id, exp.experiment_id, flush=True)
            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
            logging.getLogger("late").info("configured late")
            logging.getLogger("late").warning("careful")
        """,
    )
    done = _run(script, _env())
    project, experiment = _ids(done.stdout)
    assert done.stderr == "INFO late: configured late\nWARNING late: careful\n"
    assert _lines(_logs(project, experiment))[1:] == [
        ("late", "INFO", "configured late"),
        ("late", "WARNING", "careful"),
    ]


def test_disable_colors_strips_the_scripts_own_ansi_sequences(tmp_path):
    script = _script(
        tmp_path,
        """
        import mltrail

        with mltrail.start("colours") as exp:
            print("STARTED", exp.project_id, exp.experiment_id)
            print("\\x1b[1;31mred alert\\x1b[0m, \\x1b]0;a title\\x07plain \\x1b[2Kend")
        """,
    )
    done = _run(script, _env())
    project, experiment = _ids(done.stdout)
    api = mltrail.as_api()
    plain, coloured = io.StringIO(), io.StringIO()
    api.experiments.logs(project, experiment, disable_colors=True, follow=False, file=plain)
    api.experiments.logs(project, experiment, follow=False, file=coloured)
    assert "\x1b" not in plain.getvalue()
    assert plain.getvalue().rstrip("\n").endswith("stdout INFO red alert, plain end")
    assert "\x1b[1;31mred alert\x1b[0m" in coloured.getvalue()  # stored exactly as printed


def test_a_terminal_stays_a_terminal_and_its_bytes_pass_unchanged(tmp_path):
    script = _script(
        tmp_path,
        """
        import os, sys
        import mltrail

        with mltrail.start("tty") as exp:
            ttys = (os.isatty(1), os.isatty(2), sys.stdout.isatty())
            size = os.get_terminal_size(1)
            print("STARTED", exp.project_id, exp.experiment_id, "ttys", *ttys, flush=True)
            print("size", size.columns, size.lines, flush=True)
            os.write(1, b"raw\\nbytes\\r\\n")
        """,
    )
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # read exactly what the process wrote
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, True)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, script], env=_env(), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave
    )
    os.close(slave)
    output = bytearray()
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(TIMEOUT) == 0, output[-3000:]
    finally:
        proc.kill()
        os.close(master)
    text = output.decode()
    assert " ttys True True True\n" in text
    assert "size 100 30\n" in text
    assert text.endswith("raw\nbytes\r\n")
    project, experiment = _ids(text)
    assert _lines(_logs(project, experiment))[-2:] == [
        ("stdout", "INFO", "raw"),
        ("stdout", "INFO", "bytes"),
    ]


def test_exit_without_end_keeps_the_last_words_and_returns_while_a_child_holds_stdout(tmp_path):
    script = _script(
        tmp_path,
        """
        import subprocess, sys
        import mltrail

        exp = mltrail.start("no-end")
        print("STARTED", exp.project_id, exp.experiment_id)
        child = subprocess.Popen(["sleep", "60"])  # still holds the captured stdout at exit
        print("CHILD", child.pid)
        sys.stdout.write("last words")
        """,
    )
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        proc = subprocess.Popen([sys.executable, script], env=_env(), stdout=out, stderr=out)
        assert proc.wait(TIMEOUT) == 0
    text = out_path.read_text()
    child = int(text.split("CHILD ", 1)[1].split("\n", 1)[0])
    try:
        assert text.endswith("last words")
        project, experiment = _ids(text)
        assert _lines(_logs(project, experiment))[-1] == ("stdout", "INFO", "last words")
        api = mltrail.as_api()
        assert api.experiments.get(project, experiment)["status"] == Status.DONE.value
    finally:
        os.kill(child, 9)


def test_an_exception_restores_the_console_before_the_traceback_prints(tmp_path):
    script = _script(
        tmp_path,
        """
        import os
        import mltrail

        with mltrail.start("boom") as exp:
            print("STARTED", exp.project_id, exp.experiment_id, flush=True)
            os.write(2, b"about to fail\\n")
            raise RuntimeError("boom")
        """,
    )
    done = subprocess.run(
        [sys.executable, script], env=_env(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 1
    assert done.stderr.startswith("about to fail\nTraceback (most recent call last):")
    assert done.stderr.endswith("RuntimeError: boom\n")
    project, experiment = _ids(done.stdout)
    logs = _logs(project, experiment)
    assert [ln.message for ln in logs if ln.stream == "stderr"] == ["about to fail"]
    assert [ln.message for ln in logs if ln.stream == "traceback"][-1] == "RuntimeError: boom"
    assert mltrail.as_api().experiments.get(project, experiment)["status"] == "failed"


def test_a_c_call_writing_megabytes_while_holding_the_gil_never_freezes(tmp_path):
    """A reader *thread* would wait for the GIL the writer holds while the pipe is full: a
    freeze. The relay is a process of its own, so the write completes."""
    script = _script(
        tmp_path,
        """
        import ctypes
        import mltrail

        with mltrail.start("gil-held") as exp:
            print("STARTED", exp.project_id, exp.experiment_id, flush=True)
            data = b"".join(b"line %05d " % i + b"x" * 88 + b"\\n" for i in range(30_000))
            libc = ctypes.PyDLL(None)  # PyDLL: the GIL stays held during the call
            assert libc.write(1, data, len(data)) == len(data)  # 3 MB, three times the pipe
            print("after the C call")
        """,
    )
    done = _run(script, _env())
    project, experiment = _ids(done.stdout)
    assert done.stdout.count("\n") == 30_002 and done.stdout.endswith("after the C call\n")
    logs = _logs(project, experiment)
    assert [ln.message[:10] for ln in logs[1:-1]] == [f"line {i:05d}" for i in range(30_000)]
    assert logs[-1].message == "after the C call"


def test_a_sweep_of_runs_in_one_process_captures_each_into_its_own(tmp_path):
    script = _script(
        tmp_path,
        """
        import logging, os, subprocess
        import mltrail

        fds_before = sorted(os.listdir("/proc/self/fd"))
        for lr in range(4):
            with mltrail.start("sweep", f"lr-{lr}") as exp:
                print("STARTED", exp.project_id, exp.experiment_id, flush=True)
                subprocess.run(["echo", f"child of run {lr}"], check=True)
                logging.getLogger("sweep").warning("run %d", lr)
        print("fds kept:", sorted(os.listdir("/proc/self/fd")) == fds_before)
        print("hooks removed:", logging.getLogRecordFactory() is logging.LogRecord,
              "format" not in vars(logging.StreamHandler))
        """,
    )
    done = _run(script, _env())
    assert done.stdout.endswith("fds kept: True\nhooks removed: True True\n")
    assert done.stderr == "".join(f"run {lr}\n" for lr in range(4))  # the last-resort handler
    for lr, started in enumerate(done.stdout.splitlines()[::2][:4]):
        project, experiment = _ids(started + "\n")
        assert _lines(_logs(project, experiment)) == [
            ("stdout", "INFO", started),
            ("stdout", "INFO", f"child of run {lr}"),
            ("sweep", "WARNING", f"run {lr}"),
        ]


def test_a_killed_relay_gives_the_console_back_and_training_goes_on(tmp_path):
    script = _script(
        tmp_path,
        """
        import os, signal, time
        import mltrail

        def relay_pid():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
                    ppid = int(open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1].split()[1])
                except OSError:
                    continue
                if b"relay.py" in cmdline and ppid == os.getpid():
                    return int(pid)

        with mltrail.start("relay-dies") as exp:
            print("STARTED", exp.project_id, exp.experiment_id, flush=True)
            print("before the relay died", flush=True)
            time.sleep(0.5)
            os.kill(relay_pid(), signal.SIGKILL)
            time.sleep(1)
            for i in range(3):
                print("after", i, flush=True)
        """,
    )
    done = _run(script, _env())
    project, experiment = _ids(done.stdout)
    assert done.stdout.endswith("before the relay died\nafter 0\nafter 1\nafter 2\n")
    assert "the console relay ended; console output is no longer recorded" in done.stderr
    assert _lines(_logs(project, experiment))[1] == ("stdout", "INFO", "before the relay died")
    assert mltrail.as_api().experiments.get(project, experiment)["status"] == "done"
