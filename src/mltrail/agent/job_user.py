"""The operating-system user a job runs as, and the directories it may use.

A job runs as its agent's OS user unless the agent runs as root: then it runs as an
unprivileged user (``mltrail agent --job-user NAME``, :data:`DEFAULT_JOB_USER` by default),
with no supplementary groups, so it cannot read the agent's token file (``mltrail login``
writes ``$MLTRAIL_HOME/config.toml``, mode 0600), its memory or its environment. The agent
(root) hands each job its directory, and can still signal and sweep all the job's processes.
"""

from __future__ import annotations

import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mltrail.config import Settings, read_config_file, read_saved_tokens

DEFAULT_JOB_USER = "nobody"  # exists on Debian, Ubuntu, Fedora and Alpine alike
WORK_ROOT_MODE = 0o711  # the job user may pass through, not list other jobs' directories


class JobUserError(Exception):
    """The job user cannot be used; the message says why, in one line."""


@dataclass(frozen=True)
class JobUser:
    """An unprivileged user jobs run as: its name, uid and (only) gid."""

    name: str
    uid: int
    gid: int


def agent_user_name() -> str:
    """The name of the user the agent runs as (its uid when it has no name)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def job_user_for(name: str | None) -> JobUser | None:
    """The user jobs run as, from ``--job-user``; None when they run as the agent's user.

    Args:
        name: the option's value; None means :data:`DEFAULT_JOB_USER` for an agent running as
            root, the agent's own user otherwise.

    Raises:
        JobUserError: the user does not exist, is root, or differs from the agent's user while
            the agent is not root (only root can change to another user).
    """
    if name is None:
        name = DEFAULT_JOB_USER if os.geteuid() == 0 else agent_user_name()
    try:
        entry = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
    except KeyError:
        raise JobUserError(f"--job-user: no such user {name!r}") from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise JobUserError(
            f"--job-user: only an agent running as root can run jobs as {name!r} "
            f"(this agent runs as {agent_user_name()!r})"
        )
    if entry.pw_uid == 0:
        return None  # another name for root: no change of user
    return JobUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def default_work_root(settings: Settings, user: JobUser | None) -> Path:
    """Where job directories go without ``--work-dir``: ``$MLTRAIL_HOME/agent``, or, for a
    job user (the agent's home is usually closed to it), ``$TMPDIR/mltrail-jobs-<agent uid>``."""
    if user is None:
        return settings.home / "agent"
    return Path(tempfile.gettempdir()) / f"mltrail-jobs-{os.geteuid()}"


def open_work_root(work_root: Path, user: JobUser) -> None:
    """Create the work root for ``user``'s jobs: a real directory of the agent's, which the job
    user can reach (every parent searchable by it) and pass through (mode 0711).

    Raises:
        JobUserError: naming the directory and what is wrong with it.
    """
    try:
        work_root.mkdir(parents=True, exist_ok=True)
        info = os.lstat(work_root)
    except OSError as exc:
        raise JobUserError(f"--work-dir {work_root}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise JobUserError(
            f"--work-dir {work_root}: must be a directory of the agent's own, not a link "
            "or another user's"
        )
    for parent in work_root.absolute().parents:
        if not _searchable(parent, user):
            raise JobUserError(
                f"--work-dir {work_root}: the job user {user.name!r} cannot enter {parent}; "
                "choose a directory every user can reach"
            )
    os.chmod(work_root, WORK_ROOT_MODE)


def _searchable(directory: Path, user: JobUser) -> bool:
    info = directory.stat()
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == user.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def hand_over(workdir: Path, user: JobUser) -> None:
    """Make the job's directory, everything in it and its temporary directory ``.tmp``
    ``user``'s (links themselves, never what they point to)."""
    (workdir / ".tmp").mkdir(exist_ok=True)
    os.lchown(workdir, user.uid, user.gid)
    for parent, dirs, files in os.walk(workdir):
        for name in (*dirs, *files):
            os.lchown(os.path.join(parent, name), user.uid, user.gid)


def job_user_environ(workdir: Path, user: JobUser) -> dict[str, str]:
    """The variables that make the job's user and home its own: ``HOME`` is its directory."""
    return {
        "HOME": str(workdir),
        "USER": user.name,
        "LOGNAME": user.name,
        "TMPDIR": str(workdir / ".tmp"),
    }


def exposure_warning(settings: Settings) -> str:
    """The warning an agent gives when its jobs run as its own user: what they can read."""
    who = agent_user_name()
    advice = (
        "run the agent as root (jobs then run as --job-user) or in an account or container "
        "of its own"
    )
    token_file = settings.config_file
    try:
        in_file = bool(
            read_config_file(token_file).get("MLTRAIL_TOKEN") or read_saved_tokens(token_file)
        )
    except ValueError:
        in_file = False
    if in_file:
        return (
            f"jobs run as this agent's user {who!r} and can read its token in {token_file}; "
            + advice
        )
    return f"jobs run as this agent's user {who!r} and can read every file it can; {advice}"
