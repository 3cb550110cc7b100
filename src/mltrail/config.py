"""Settings: the one place that reads ``MLTRAIL_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_PORT = 5870
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, read once at the edge and passed down.

    Attributes:
        url: server URL; ``None`` selects embedded mode.
        token: API token for the server.
        home: directory holding the embedded database and the spool.
        project / experiment: set by the agent so the SDK attaches to a pre-created experiment.
        strict: raise transport faults into training code instead of spooling (tests).
        spool_limit_bytes: spool size after which the oldest batches are dropped, with a warning.
        capture_console: whether the SDK captures stdout/stderr (the agent captures instead).
    """

    url: str | None = None
    token: str | None = None
    home: Path = field(default_factory=lambda: Path("~/.mltrail").expanduser())
    project: str | None = None
    experiment: int | None = None
    strict: bool = False
    spool_limit_bytes: int = 512 * 1024 * 1024
    capture_console: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MLTRAIL_HOME") or "~/.mltrail").expanduser()
        experiment = env.get("MLTRAIL_EXPERIMENT")
        return cls(
            url=(env.get("MLTRAIL_URL") or None),
            token=(env.get("MLTRAIL_TOKEN") or None),
            home=home,
            project=(env.get("MLTRAIL_PROJECT") or None),
            experiment=int(experiment) if experiment and experiment.isdigit() else None,
            strict=_flag(env.get("MLTRAIL_STRICT")),
            spool_limit_bytes=int(env.get("MLTRAIL_SPOOL_LIMIT_BYTES") or cls.spool_limit_bytes),
            capture_console=not _flag(env.get("MLTRAIL_NO_CAPTURE")),
        )

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def db_url(self) -> str:
        """The embedded store's SQLite URL."""
        return f"sqlite:///{self.home / 'mltrail.db'}"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")
