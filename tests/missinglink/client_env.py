"""The original MissingLink client (``missinglink`` 19.10 from PyPI) in a cached virtualenv.

The client pins Click 7 and other old releases that conflict with mltrail's own, so it never
goes into mltrail's venv: :func:`client_venv` builds a virtualenv of its own under
``~/.cache/mltrail-tests/missinglink-<hash of the pins>`` with exactly the install lines of
issue 18, and reuses it while it is complete (a ``.complete`` marker is written last, so an
interrupted build is redone). Tests skip only when the package registry cannot be reached; any
other failure to build is an error.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# `pip install --no-deps` of the client's own packages: their declared pins are outdated
CLIENT_PINS = (
    "missinglink==19.10.26630",
    "missinglink-sdk==19.9.26893",
    "ml-core==19.9.3999",
    "ml-legit==19.9.8734",
    "missinglink-kernel==19.9.26893",
    "ml-crypto==0.7.811",
)
# then the dependencies it imports, at releases that work together on Python 3.11
DEPENDENCY_PINS = (
    "click==7.1.2",
    "click-completion==0.5.2",
    "Flask==1.1.4",
    "Werkzeug==1.0.1",
    "Jinja2==2.11.3",
    "itsdangerous==1.1.0",
    "MarkupSafe==2.0.1",
    "PyJWT==1.7.1",
    "sentry-sdk==0.11.2",
    "requests",
    "six",
    "humanize",
    "tqdm",
    "terminaltables",
    "pyyaml",
    "colorama",
    "sseclient",
    "msgpack",
    "chardet",
    "wcwidth",
    "pygments",
    "docker",
    "GitPython",
    "boto3",
    "httplib2",
    "pycryptodome",
    "pycryptodomex",
    "numpy",
    "ply",
    "retrying",
    "blinker",
)
# The client reports exceptions to MissingLink's Sentry project unless its version reads as a
# development one, and its SDK checks the registry for a newer release (and installs it) when
# imported; both are turned off, and anything else it tries to reach goes to a closed local port.
CLIENT_ENV = {
    "_ML_FORCE_VERSION": "0",
    "ML_DISABLE_SELF_UPDATE": "1",
    "ML_DISABLE_DEPRECATED_WARNINGS": "1",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mltrail-tests"
_MARKER = ".complete"
_PROBE_PACKAGE = "missinglink==19.10.26630"


@dataclass(frozen=True)
class ClientVenv:
    """A virtualenv holding the MissingLink client.

    Attributes:
        root: the virtualenv's folder.
    """

    root: Path

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.root / "bin" / "python"

    @property
    def ml(self) -> Path:
        """The client's ``ml`` console script."""
        return self.root / "bin" / "ml"


def pins_digest() -> str:
    """A short hash of the pins and the interpreter's version: the cache key."""
    text = "\n".join((*CLIENT_PINS, "--", *DEPENDENCY_PINS, sys.version.split()[0]))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def client_venv() -> ClientVenv:
    """The cached client virtualenv, built on first use.

    Returns:
        The ready virtualenv.

    Raises:
        pytest.skip.Exception: the package registry cannot be reached (nothing else skips).
        RuntimeError: the build failed for another reason (its pip output is in the message).
    """
    venv = ClientVenv(CACHE_ROOT / f"missinglink-{pins_digest()}")
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    # one build at a time: another test session on this machine may be building it right now
    with (CACHE_ROOT / f"{venv.root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ((venv.root / _MARKER).exists() and venv.python.exists()):
            _build(venv)
    return venv


def _build(venv: ClientVenv) -> None:
    """Create the virtualenv with the issue's two install lines, then check the client imports."""
    shutil.rmtree(venv.root, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv.root)])
    pip = [str(venv.python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    try:
        _run([*pip, "--no-deps", *CLIENT_PINS])
        _run([*pip, *DEPENDENCY_PINS])
    except RuntimeError as exc:
        if not _registry_reachable(venv):
            shutil.rmtree(venv.root, ignore_errors=True)
            pytest.skip(
                f"package registry unreachable, cannot install the MissingLink client: {exc}"
            )
        raise
    _run([str(venv.python), "-c", "from missinglink.commands.as_api import as_api"], CLIENT_ENV)
    (venv.root / _MARKER).write_text("\n".join((*CLIENT_PINS, *DEPENDENCY_PINS)) + "\n")


def _run(argv: list[str], env_overrides: dict[str, str] | None = None) -> None:
    env = {**os.environ, **(env_overrides or {})}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )


def _registry_reachable(venv: ClientVenv) -> bool:
    """Whether pip can fetch the client's own package at all (a download, nothing installed)."""
    probe = venv.root / "probe"
    done = subprocess.run(
        [
            str(venv.python),
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "-d",
            str(probe),
            _PROBE_PACKAGE,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode == 0


DRIVER = Path(__file__).with_name("client_driver.py")
ML_DRIVER = Path(__file__).with_name("client_ml_driver.py")
RESULTS_MARK = "MISSINGLINK-RESULTS "


class ClientCallError(Exception):
    """An ``as_api()`` call raised in the client; ``str()`` is the message it raised with."""


@dataclass
class MissingLinkClient:
    """The client configured for one mltrail user, run as subprocesses of its virtualenv.

    Attributes:
        venv: the client's virtualenv.
        config: its config file (``mltrail missinglink config`` output).
        home: HOME for the client (it keeps ``~/.MissingLinkAI`` there).
    """

    venv: ClientVenv
    config: Path
    home: Path

    def env(self) -> dict[str, str]:
        """The client's environment: no MLTRAIL_*, a HOME of its own, :data:`CLIENT_ENV`."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
        return {**base, **CLIENT_ENV, "HOME": str(self.home)}

    def api_calls(self, *calls: tuple[str, dict[str, Any]], timeout: float = 120) -> list[dict]:
        """Run ``as_api().experiments.<method>(**kwargs)`` calls in one client process.

        Returns:
            Per call ``{"result": ...}`` or ``{"error": type name, "message": ...}``.
        """
        spec = json.dumps({"config": str(self.config), "calls": [list(c) for c in calls]})
        return self._run_driver(DRIVER, spec, timeout)

    def _run_driver(self, driver: Path, spec: str, timeout: float) -> list[dict]:
        """Run ``driver`` in the client's venv; the JSON list on its last marked stdout line."""
        done = subprocess.run(
            [str(self.venv.python), str(driver), spec],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )
        marked = [x for x in done.stdout.splitlines() if x.startswith(RESULTS_MARK)]
        if done.returncode != 0 or not marked:
            raise RuntimeError(f"client exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return json.loads(marked[-1][len(RESULTS_MARK) :])  # type: ignore[no-any-return]

    def api(self, method: str, **kwargs: Any) -> Any:
        """One ``as_api().experiments`` call's result; :class:`ClientCallError` if it raised."""
        (outcome,) = self.api_calls((method, kwargs))
        if "error" in outcome:
            raise ClientCallError(outcome["message"])
        return outcome["result"]

    def start_api(self, method: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start one call in the background (a live log follow), stdout and stderr piped."""
        spec = json.dumps({"config": str(self.config), "calls": [[method, kwargs]]})
        return subprocess.Popen(
            [str(self.venv.python), str(DRIVER), spec],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def ml(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The client's ``ml`` command: ``ml --config-file CONFIG -nvc ARGS...``."""
        return subprocess.run(
            [str(self.venv.ml), "--config-file", str(self.config), "-nvc", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            check=False,
        )

    def ml_batch(
        self, *commands: list[str], timeout: float = 120
    ) -> list[subprocess.CompletedProcess[str]]:
        """Several ``ml`` commands, each as :meth:`ml` runs it, in one client process, in order:
        the client takes seconds to start."""
        argvs = [["--config-file", str(self.config), "-nvc", *args] for args in commands]
        outcomes = self._run_driver(ML_DRIVER, json.dumps(argvs), timeout)
        return [
            subprocess.CompletedProcess([str(self.venv.ml), *argv], **outcome)
            for argv, outcome in zip(argvs, outcomes, strict=True)
        ]

    def start_ml(self, *args: str) -> subprocess.Popen[str]:
        """``ml ...`` in the background, stdout and stderr piped."""
        return subprocess.Popen(
            [str(self.venv.ml), "--config-file", str(self.config), "-nvc", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )
