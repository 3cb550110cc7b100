"""What a job runs from: a git commit pushed to a remote, or a tarball of a directory.

``api.jobs.submit`` uses it (so ``mltrail run`` and Python callers share it); the agent unpacks
on its side (``agent/workdir.py``).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from mltrail.core.errors import ValidationError
from mltrail.core.jobs import MAX_SNAPSHOT_BYTES

SOURCES = ("auto", "git", "tarball", "none")


def job_source(cwd: Path, mode: str) -> tuple[dict[str, Any] | None, bytes | None]:
    """The job's source description and, for a tarball, its bytes.

    Args:
        cwd: the directory the job is submitted from.
        mode: ``git`` (a clean checkout whose HEAD is on a remote), ``tarball``, ``none``, or
            ``auto``: git when possible, else a tarball.

    Raises:
        ValidationError: ``git`` asked for but not possible, or the directory is too large
            (field ``source`` / ``snapshot``).
    """
    if mode not in SOURCES:
        raise ValidationError(f"must be one of {', '.join(SOURCES)}, got {mode!r}", "source")
    if mode == "none":
        return None, None
    if mode in ("git", "auto"):
        git = git_source(cwd)
        if git is not None:
            return git, None
        if mode == "git":
            raise ValidationError(
                "--source git needs a clean git checkout whose HEAD is on a remote branch",
                "source",
            )
    return {"kind": "tarball"}, build_tarball(cwd, limit=MAX_SNAPSHOT_BYTES)


def git_source(cwd: Path) -> dict[str, Any] | None:
    """git remote URL and commit when the checkout is clean and HEAD is pushed, else None."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit or git("status", "--porcelain") != "":
        return None
    remotes = git("branch", "-r", "--contains", "HEAD")
    url = git("remote", "get-url", "origin")
    if not remotes or not url:
        return None
    return {"kind": "git", "url": url, "commit": commit}


SKIPPED_DIRS = (
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
)


def build_tarball(directory: Path, *, limit: int, exclude: tuple[str, ...] = SKIPPED_DIRS) -> bytes:
    """A gzip tarball of ``directory`` (relative paths), refusing to grow past ``limit`` bytes.

    Directories named in ``exclude`` are left out, and so are symlinks pointing outside
    ``directory`` (the agent would refuse them).

    Raises:
        ValidationError: the directory is larger than the limit (field ``snapshot``).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if any(part in exclude for part in rel.parts):
                continue
            if path.is_symlink() and not _inside(path, directory):
                continue
            if path.is_symlink() or path.is_file() or path.is_dir():
                tar.add(path, arcname=rel.as_posix(), recursive=False)
            if buffer.tell() > limit:
                raise ValidationError(
                    f"the working directory is over {limit} bytes compressed; "
                    "run from a smaller directory or use --source git",
                    "snapshot",
                )
    data = buffer.getvalue()
    if len(data) > limit:
        raise ValidationError(f"the working directory is over {limit} bytes compressed", "snapshot")
    return data


def _inside(link: Path, directory: Path) -> bool:
    try:
        link.resolve().relative_to(directory.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True
