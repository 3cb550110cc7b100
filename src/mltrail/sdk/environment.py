"""What an experiment records about where it ran: environment and git source state.

Framework versions come from installed package metadata, so nothing heavy is imported just to
learn its version; the "framework" is the first one the training script has already imported.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# distribution name -> module name, in the order the "framework" is chosen
FRAMEWORKS = (
    ("lightning", "lightning"),
    ("pytorch-lightning", "pytorch_lightning"),
    ("transformers", "transformers"),
    ("keras", "keras"),
    ("tensorflow", "tensorflow"),
    ("torch", "torch"),
    ("jax", "jax"),
    ("scikit-learn", "sklearn"),
    ("xgboost", "xgboost"),
    ("lightgbm", "lightgbm"),
    ("numpy", "numpy"),
)
GIT_TIMEOUT_SECONDS = 5.0


def collect_environment(argv: list[str] | None = None) -> dict[str, Any]:
    """Host, platform, Python, command line, the framework in use and framework versions.

    Args:
        argv: the command line to record; ``sys.argv`` by default.

    Returns:
        A JSON-ready dict.
    """
    versions = framework_versions()
    return {
        "framework": current_framework(),
        "versions": versions,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "argv": list(sys.argv if argv is None else argv),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }


def framework_versions() -> dict[str, str]:
    """Installed versions of the known ML frameworks, read from package metadata."""
    found: dict[str, str] = {}
    for dist, _module in FRAMEWORKS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def current_framework() -> str | None:
    """The first known framework the process has already imported (none imported here)."""
    for dist, module in FRAMEWORKS:
        if module in sys.modules:
            return dist
    return None


def collect_source(cwd: str | Path | None = None) -> dict[str, Any]:
    """Git commit, branch, dirty flag and remote of ``cwd``; empty outside a repository.

    Credentials embedded in the remote URL are removed before recording it.
    """
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return {}
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    return {
        "vcs": "git",
        "commit": commit,
        "branch": None if branch in (None, "HEAD") else branch,
        "dirty": bool(status),
        "remote": strip_credentials(remote) if remote else None,
    }


def strip_credentials(url: str) -> str:
    """``https://user:token@host/repo`` -> ``https://host/repo``; other forms unchanged."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _git(args: list[str], cwd: str | Path | None) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip()
