"""Processes the benchmark starts: servers on loopback, their memory, and clean shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class Server:
    """A server subprocess in its own process group, stopped with its children on exit."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def wait_idle(self) -> None:
        """Wait until the server's process tree has settled (see :func:`wait_idle`)."""
        wait_idle(self.proc.pid)

    def wait_ready(self, path: str, timeout: float = 120.0) -> None:
        """Poll ``path`` until it answers; RuntimeError with the server's log when it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2):
                    return
            except OSError as exc:  # refused until it listens; 4xx still means it is up
                if getattr(exc, "code", None) is not None:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def tree_rss(self) -> int:
        """Resident bytes of the server and all its descendants."""
        return tree_rss(self.proc.pid)

    def pause(self) -> None:
        """Stall the whole server tree (SIGSTOP): connections hang, nothing is answered."""
        self._signal_tree(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_tree(signal.SIGCONT)

    def _signal_tree(self, sig: int) -> None:
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.resume()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def descendants(pid: int) -> list[int]:
    """Every descendant pid of ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> int:
    return sum(rss(p) for p in [pid, *descendants(pid)])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


SETTLE_WINDOW = 1.0  # seconds a started server must stay idle; --quick watches a shorter one


def wait_idle(
    pid: int, *, busy_fraction: float = 0.05, window: float | None = None, timeout: float = 60.0
) -> None:
    """Wait until the process tree uses under ``busy_fraction`` of a core over ``window``
    (:data:`SETTLE_WINDOW` by default).

    A server that answers its health check may still be starting workers; timing anything
    while it burns CPU on the same two cores would measure the start-up, not the workload.
    """
    window = SETTLE_WINDOW if window is None else window
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(p) for p in [pid, *descendants(pid)])
        time.sleep(window)
        if sum(cpu_seconds(p) for p in [pid, *descendants(pid)]) - before < busy_fraction * window:
            return


class PeakSampler:
    """Samples a callable returning bytes in a daemon thread; ``peak`` is the maximum seen."""

    def __init__(self, measure: Any, interval: float = 0.1) -> None:
        self._measure = measure
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._measure())
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakSampler:
        self.peak = self._measure()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._measure())


def run_json(
    argv: Sequence[str], timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """Run a worker that prints one JSON object as its last stdout line; return it."""
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1:3]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"{argv[1:3]} printed no JSON:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


def python_worker(module: str, workload: str, args: dict[str, Any]) -> list[str]:
    """argv running ``python -m module workload args`` with this interpreter."""
    return [sys.executable, "-m", module, workload, json.dumps(args)]
