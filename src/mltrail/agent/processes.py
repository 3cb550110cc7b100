"""Containing a job's processes: how the agent starts a job under the shim, marks its
processes, and finds and kills whatever a job (or an earlier life of the agent) left behind.

Every job process carries ``MLT_AGENT_JOB=<work root>|<agent pid>|<job id>`` in its
environment. After each job the agent kills every process still carrying that job's mark, and
at start-up every process marked with its work root by an agent that is no longer alive: the
leftovers of a SIGKILLed earlier life (the shim normally ends them itself, see ``shim.py``).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mltrail.agent.shim import (
    PR_SET_CHILD_SUBREAPER,
    descendants,
    prctl,
    proc_files,
    signal_tree,
)

SHIM = Path(__file__).with_name("shim.py")
MARK_VARIABLE = "MLT_AGENT_JOB"
PR_SET_DUMPABLE = 4
_ADOPTING = [False]

__all__ = [
    "MARK_VARIABLE",
    "contain_agent",
    "descendants",
    "job_mark",
    "kill_marked",
    "kill_orphans",
    "reap_adopted",
    "shim_command",
    "signal_tree",
]


def contain_agent() -> None:
    """Harden the agent process itself (Linux; a no-op elsewhere).

    Not dumpable: its ``/proc/<pid>/environ`` and memory, which hold the agent's token, become
    unreadable to the jobs it runs as the same OS user. A child subreaper: descendants of a
    job whose shim died are re-parented to the agent, not to init, so they stay findable.
    """
    prctl(PR_SET_DUMPABLE, 0)
    _ADOPTING[0] = prctl(PR_SET_CHILD_SUBREAPER, 1)


def reap_adopted() -> None:
    """Reap adopted orphans that died (only a subreaper agent has any; a runner inside another
    program must not reap that program's children)."""
    if not _ADOPTING[0]:
        return
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def shim_command(
    command: list[str], status_fd: int, grace: float, user: tuple[int, int] | None = None
) -> list[str]:
    """The argv that runs ``command`` under the shim, as ``user`` (uid, gid) when given."""
    as_user = "-" if user is None else f"{user[0]}:{user[1]}"
    args = [str(os.getpid()), str(status_fd), repr(float(grace)), as_user, "--"]
    return [sys.executable, "-I", str(SHIM), *args, *command]


def job_mark(work_root: Path, job_id: int) -> str:
    """The mark of one job of this agent process."""
    return f"{work_root}|{os.getpid()}|{job_id}"


def _marks() -> dict[int, str]:
    """pid -> the mark in its environment, for every process that carries one."""
    prefix = MARK_VARIABLE.encode() + b"="
    found: dict[int, str] = {}
    for pid, environ in proc_files("environ"):
        if pid == os.getpid():
            continue
        for entry in environ.split(b"\0"):
            if entry.startswith(prefix):
                found[pid] = entry[len(prefix) :].decode(errors="replace")
    return found


def kill_marked(mark: str) -> int:
    """SIGKILL every process carrying ``mark`` and its descendants; how many."""
    return _kill([pid for pid, found in _marks().items() if found == mark])


def kill_orphans(work_root: Path) -> int:
    """SIGKILL the processes of jobs run from ``work_root`` by agents no longer alive."""
    doomed = []
    for pid, mark in _marks().items():
        root, _, rest = mark.rpartition("|")[0].rpartition("|")
        agent = rest if root else ""
        if root == str(work_root) and agent.isdigit() and not _alive(int(agent)):
            doomed.append(pid)
    return _kill(doomed)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill(pids: list[int]) -> int:
    killed = 0
    for pid in pids:
        signal_tree(pid, signal.SIGKILL)
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed
