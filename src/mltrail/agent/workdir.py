"""Fresh working directories for jobs: from an uploaded tarball or a git commit.

Tarballs come from users, so extraction refuses anything that would land outside the
directory: absolute paths, ``..`` components, links pointing out, devices (tar-slip); and
anything too big to be a working directory: more than :data:`MAX_EXTRACTED_BYTES` expanded or
:data:`MAX_EXTRACTED_FILES` members (``mltrail agent --max-tarball-bytes / --max-tarball-files``),
names over :data:`MAX_NAME_BYTES` bytes or :data:`MAX_NAME_DEPTH` levels deep.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

GIT_TIMEOUT_SECONDS = 600
MAX_EXTRACTED_BYTES = 1024 * 1024 * 1024
MAX_EXTRACTED_FILES = 100_000
MAX_NAME_BYTES = 4096
MAX_NAME_DEPTH = 64
MAX_COMPONENT_BYTES = 255


@dataclass(frozen=True)
class TarLimits:
    """How big a job's tarball may expand: bytes in all, and members."""

    max_bytes: int = MAX_EXTRACTED_BYTES
    max_files: int = MAX_EXTRACTED_FILES


class WorkdirError(Exception):
    """The job's working directory could not be prepared; the message says why."""


def prepare_workdir(
    root: Path,
    job_id: int,
    source: dict[str, Any],
    fetch_snapshot: Callable[[], bytes],
    limits: TarLimits | None = None,
    *,
    local_git: bool = True,
) -> Path:
    """Create a fresh directory under ``root`` and fill it from the job's source.

    Args:
        root: where the agent keeps job directories.
        job_id: used in the directory name, for people looking at the disk.
        source: the job's source description (kind none, git or tarball).
        fetch_snapshot: returns the tarball bytes; called only for tarball sources.
        limits: how far a tarball may expand (:class:`TarLimits` defaults when None).
        local_git: whether a git source may be a path or ``file://`` URL on this machine
            (False for a job user: the agent, root, would copy a repository the job user
            cannot read into the job's directory).

    Returns:
        The new directory.

    Raises:
        WorkdirError: the tarball is unsafe or corrupt, or the git checkout failed.
    """
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"job-{job_id}-", dir=root))
    try:
        kind = source.get("kind", "none")
        if kind == "tarball":
            extract_tarball(fetch_snapshot(), workdir, limits or TarLimits())
        elif kind == "git":
            checkout_git(str(source["url"]), str(source["commit"]), workdir, local=local_git)
        elif kind != "none":
            raise WorkdirError(f"unknown source kind {kind!r}")
    except BaseException:
        remove_workdir(workdir)
        raise
    return workdir


def remove_workdir(workdir: Path) -> None:
    """Delete a job directory, ignoring what cannot be deleted."""
    shutil.rmtree(workdir, ignore_errors=True)


def check_member(member: tarfile.TarInfo) -> None:
    """Refuse a tar member that could write outside the extraction directory.

    Raises:
        WorkdirError: naming the member and the problem.
    """
    name = member.name
    _check_name(name)
    if member.issym() or member.islnk():
        _check_name(member.linkname)
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise WorkdirError(f"unsafe tarball: absolute path {name!r}")
    if ".." in path.parts or "\\" in name:
        raise WorkdirError(f"unsafe tarball: path escapes the directory {name!r}")
    if member.isdev() or member.isfifo():
        raise WorkdirError(f"unsafe tarball: device or fifo {name!r}")
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        base = path.parent if member.issym() else PurePosixPath()
        if target.is_absolute() or ".." in (base / target).parts:
            raise WorkdirError(
                f"unsafe tarball: link {name!r} points outside ({member.linkname!r})"
            )


def _check_name(name: str) -> None:
    """Refuse a member or link name too long or too deep for any file system (or for the
    extraction's recursion)."""
    raw = name.encode("utf-8", errors="surrogateescape")
    if len(raw) > MAX_NAME_BYTES:
        raise WorkdirError(f"unsafe tarball: a name of {len(raw)} bytes, over {MAX_NAME_BYTES}")
    parts = raw.split(b"/")
    if len(parts) > MAX_NAME_DEPTH:
        raise WorkdirError(
            f"unsafe tarball: a path {len(parts)} levels deep, over {MAX_NAME_DEPTH}"
        )
    if any(len(p) > MAX_COMPONENT_BYTES for p in parts):
        raise WorkdirError(f"unsafe tarball: a name part over {MAX_COMPONENT_BYTES} bytes")


def extract_tarball(data: bytes, dest: Path, limits: TarLimits | None = None) -> None:
    """Extract a (gzip) tarball into ``dest`` after checking every member and the totals.

    Python's ``data`` filter is applied as a second line of defence.

    Raises:
        WorkdirError: an unsafe or corrupt tarball, or one over ``limits``.
    """
    limits = limits or TarLimits()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            members, total = [], 0
            for member in tar:
                check_member(member)
                members.append(member)
                total += max(member.size, 0)
                if len(members) > limits.max_files:
                    raise WorkdirError(f"tarball holds over {limits.max_files} files")
                if total > limits.max_bytes:
                    raise WorkdirError(f"tarball expands to over {limits.max_bytes} bytes")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, RecursionError) as exc:
        raise WorkdirError(f"bad tarball: {type(exc).__name__}: {exc}") from None


def checkout_git(url: str, commit: str, dest: Path, *, local: bool = True) -> None:
    """Clone ``url`` into ``dest`` and check out ``commit`` (detached); ``local=False``
    refuses a repository on this machine (a path or ``file://`` URL).

    Raises:
        WorkdirError: git is missing, the clone failed or the commit does not exist.
    """
    if url.startswith("-") or commit.startswith("-"):
        raise WorkdirError("git url and commit must not start with '-'")
    transports = [] if local else ["-c", "protocol.file.allow=never"]
    _git(["git", *transports, "clone", "--quiet", "--no-checkout", "--", url, str(dest)], None)
    _git(
        ["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit],
        cwd=dest,
    )


def _git(args: list[str], cwd: Path | None) -> None:
    try:
        result = subprocess.run(
            args, cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError:
        raise WorkdirError("git is not installed on the agent's machine") from None
    except subprocess.TimeoutExpired:
        raise WorkdirError(f"{' '.join(args[:2])} timed out") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise WorkdirError(
            f"{'clone' if 'clone' in args else 'checkout'} failed: "
            f"{detail[-1] if detail else result.returncode}"
        )
