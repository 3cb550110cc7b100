"""The job shim: the process between the agent and a job's command, so the job's whole process
tree ends with the job, with a stop, and with the agent.

Run as a script with the standard library only (``python shim.py AGENT_PID STATUS_FD GRACE USER
-- COMMAND...``), in the job's own session. ``USER`` is ``UID:GID`` when the agent runs as root:
the shim stays root (so the job cannot signal it) and starts the command as that user, with no
supplementary groups; ``-`` keeps the agent's user. On Linux it becomes a *child subreaper*, so
every descendant of the command, ``setsid`` and double-forked daemons included, stays below it
instead of escaping to init; and it asks for ``SIGTERM`` when the agent dies
(``PR_SET_PDEATHSIG``), so a SIGKILLed agent takes its job down too. It then:

* starts the command (a start failure is written to ``STATUS_FD`` as ``CODE message``: 127 not
  found, 126 not executable), and reaps every process that is re-parented to it;
* on ``SIGTERM`` / ``SIGINT`` / ``SIGHUP`` (a stop, the agent's death), sends ``SIGTERM`` to
  every descendant, and ``SIGKILL`` to those still alive after ``GRACE`` seconds;
* when the command ends, kills whatever it left behind, then exits as the command did (the
  same exit code, or killed by the same signal).

The agent imports :func:`signal_tree` and :func:`descendants` from here (``agent/processes.py``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterator

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_SECONDS = 0.05
REAP_SECONDS = 5.0


def prctl(option: int, value: int) -> bool:
    """Linux's ``prctl(option, value)``; False where it is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def proc_files(name: str) -> Iterator[tuple[int, bytes]]:
    """``(pid, contents of /proc/<pid>/<name>)`` for every process that can be read."""
    try:
        pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                yield pid, f.read()
        except OSError:
            continue


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process, from ``/proc`` (empty where there is none)."""
    found: dict[int, int] = {}
    for pid, stat in proc_files("stat"):
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            found[pid] = int(fields[1])
    return found


def descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (children first), found through ``/proc``."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    out: list[int] = []
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def signal_tree(root: int, sig: int) -> int:
    """Send ``sig`` to every descendant of ``root``; how many were signalled."""
    sent = 0
    for pid in descendants(root):
        try:
            os.kill(pid, sig)
            sent += 1
        except (ProcessLookupError, PermissionError):
            pass
    return sent


def _report_start_failure(status_fd: int, code: int, message: str) -> int:
    os.write(status_fd, f"{code} {message}".encode(errors="replace"))
    return code


def _start(command: list[str], status_fd: int, user: str) -> int | None:
    """The command's pid, or None after writing why it could not start."""
    import subprocess

    drop: dict[str, object] = {}
    by = ""
    if user != "-":
        uid, gid = (int(part) for part in user.split(":"))
        drop = {"user": uid, "group": gid, "extra_groups": []}
        by = f" by uid {uid}"
    try:
        return subprocess.Popen(command, close_fds=True, **drop).pid  # type: ignore[call-overload]
    except FileNotFoundError:
        _report_start_failure(status_fd, 127, f"command not found{by}: {command[0]}")
    except PermissionError:
        _report_start_failure(status_fd, 126, f"command not executable{by}: {command[0]}")
    except OSError as exc:
        _report_start_failure(status_fd, 1, f"could not start {command[0]}: {exc.strerror or exc}")
    return None


def _reap(main: int) -> int | None:
    """Reap every finished child (adopted orphans too); the main one's wait status if it ended.

    Raises:
        ChildProcessError: no child is left at all.
    """
    status = None
    while True:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            if status is None:
                raise
            return status
        if pid == 0:
            return status
        if pid == main:
            status = raw


def supervise(main: int, grace: float, stopping: list[int]) -> int:
    """Wait for the command, stopping its tree when asked; its wait status."""
    me, status, kill_at = os.getpid(), None, None
    while status is None:
        try:
            status = _reap(main)
        except ChildProcessError:
            return 0
        if status is not None:
            break
        if stopping and kill_at is None:
            signal_tree(me, signal.SIGTERM)
            kill_at = time.monotonic() + grace
        if kill_at is not None and time.monotonic() > kill_at:
            signal_tree(me, signal.SIGKILL)
        time.sleep(POLL_SECONDS)
    _end_leftovers(me)
    return status


def _end_leftovers(me: int) -> None:
    """Kill what the command left behind and reap it (bounded: a D-state process may linger)."""
    deadline = time.monotonic() + REAP_SECONDS
    while time.monotonic() < deadline:
        signal_tree(me, signal.SIGKILL)
        try:
            _reap(-1)
        except ChildProcessError:
            return
        time.sleep(POLL_SECONDS)


def exit_like(status: int) -> None:
    """Exit as a process with wait status ``status`` did: same code, or same signal."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(1)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(argv: list[str]) -> None:
    agent, status_fd, grace, user = int(argv[1]), int(argv[2]), float(argv[3]), argv[4]
    command = argv[6:]
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != agent:  # the agent died before the death signal was armed
        os._exit(1)
    pid = _start(command, status_fd, user)
    os.close(status_fd)
    if pid is None:
        os._exit(1)
    exit_like(supervise(pid, grace, stopping))


if __name__ == "__main__":
    main(sys.argv)
