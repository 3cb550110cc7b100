"""Settings: the one place that reads ``MLTRAIL_*`` environment variables."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_PORT = 5870
DEFAULT_HOST = "127.0.0.1"
CAPTURE_LEVELS = ("fd", "python", "off")
DEFAULT_CRASH_AFTER_SECONDS = 300.0
DEFAULT_TRASH_DAYS = 30.0  # how long a deleted experiment stays restorable
DEFAULT_SYSTEM_METRICS_SECONDS = 10.0
CONFIG_FILE_NAME = "config.toml"
# the keys config.toml may hold: the MLTRAIL_* variables Settings reads, without the prefix
CONFIG_KEYS = (
    "url", "token", "project", "experiment", "job", "strict", "capture", "no_capture",
    "artifacts", "artifact_max_file_bytes", "artifact_quota_bytes", "spool_limit_bytes",
    "crash_after", "trash_days", "resume", "system_metrics", "system_metrics_interval",
    "request_deadline",
)  # fmt: skip
TOKENS_TABLE = "tokens"  # config.toml's [tokens]: a saved token per server (server_key: token)


@dataclass(frozen=True)
class Settings:
    """Everything configurable, read once at the edge and passed down.

    Attributes:
        url: server URL; ``None`` selects embedded mode.
        token: an API token given explicitly (``MLTRAIL_TOKEN``, or an argument): sent to
            whatever ``url`` is. Read :attr:`auth_token` for the token to send.
        saved_tokens: the tokens ``mltrail login`` saved, by :func:`server_key` of the URL
            each was saved for: each is sent to its own server only (``MLTRAIL_URL`` naming
            another server must not receive it).
        home: directory holding the embedded database and the spool.
        project / experiment: set by the agent so the SDK attaches to a pre-created experiment.
        job: set by the agent: the job the process runs for.
        strict: raise transport faults into training code instead of spooling (tests).
        spool_limit_bytes: spool size after which the oldest batches are dropped, with a warning.
        capture_console: whether the SDK captures stdout/stderr (the agent captures instead).
        capture_fds: capture at the file-descriptor level where the platform allows (so child
            processes and C extensions are captured); else at the Python level.
        artifacts: where the embedded store (and ``mltrail server`` by default) keeps artifact
            bytes: a folder or ``s3://bucket/prefix``; ``$MLTRAIL_HOME/artifacts`` when None.
        artifact_max_file_bytes / artifact_quota_bytes: the per-file limit and per-project
            quota of artifacts; the defaults of ``mltrail.core.artifacts`` when None.
        crash_after: seconds without a heartbeat after which a running experiment reads
            ``crashed`` (``MLTRAIL_CRASH_AFTER``); read by the server and by every embedded-mode
            reader (CLI, UI, scripts), and a run's SDK beats a few times within it.
        trash_days: how long a deleted experiment stays restorable in the trash
            (``MLTRAIL_TRASH_DAYS``, default 30); after that a purge may remove it for good.
        resume: ``(project, experiment)`` a run started without ``resume=`` continues
            (``MLTRAIL_RESUME=PROJECT/EXPERIMENT``; the project an id or a display name).
        system_metrics: whether runs (and the agent, for its jobs) sample CPU, memory, disk,
            network and GPUs into ``system/`` series (``MLTRAIL_SYSTEM_METRICS=off`` stops it).
        system_metrics_interval: seconds between samples (``MLTRAIL_SYSTEM_METRICS_INTERVAL``).
        request_deadline: seconds one call to a server may take, every retry included
            (``MLTRAIL_REQUEST_DEADLINE``; None: the client's default, 120 s, 60 s for a run's
            writer); an artifact's bytes must instead move 64 KiB in every such window, so a
            dripping server fails and a large file on a slow link does not.

    Every setting can also come from ``$MLTRAIL_HOME/config.toml`` (default
    ``~/.mltrail/config.toml``), keyed by the variable's name without ``MLTRAIL_`` in lower
    case (``url = "..."``, ``system_metrics_interval = 30``); the environment wins over the
    file, but an empty variable (``MLTRAIL_URL=``) counts as unset. Tokens in the file belong
    to a server: ``[tokens]`` maps each server URL to its token, and a bare ``token = "..."``
    (what older versions of ``mltrail login`` wrote) is the token of the file's ``url`` (sent
    nowhere when the file has no ``url``).
    """

    url: str | None = None
    token: str | None = field(default=None, repr=False)
    saved_tokens: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    home: Path = field(default_factory=lambda: Path("~/.mltrail").expanduser())
    project: str | None = None
    experiment: int | None = None
    job: int | None = None
    strict: bool = False
    spool_limit_bytes: int = 512 * 1024 * 1024
    capture_console: bool = True
    capture_fds: bool = True
    artifacts: str | None = None
    artifact_max_file_bytes: int | None = None
    artifact_quota_bytes: int | None = None
    crash_after: float = DEFAULT_CRASH_AFTER_SECONDS
    trash_days: float = DEFAULT_TRASH_DAYS
    resume: tuple[str, int] | None = None
    system_metrics: bool = True
    system_metrics_interval: float = DEFAULT_SYSTEM_METRICS_SECONDS
    request_deadline: float | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, config_file: Path | None = None
    ) -> Settings:
        """Settings from ``MLTRAIL_*`` variables (``os.environ`` when ``environ`` is None),
        over those of the config file (``$MLTRAIL_HOME/config.toml`` when ``config_file`` is
        None; a missing file is no error, a malformed one a ValueError naming it).

        The one reader of ``MLTRAIL_*``: every edge (CLI root group, server factory's caller,
        SDK start, agent) calls it once and passes the result down.
        """
        env = os.environ if environ is None else environ
        home = Path(env.get("MLTRAIL_HOME") or "~/.mltrail").expanduser()
        values = _Values(env, config_file or home / CONFIG_FILE_NAME)
        capture = _capture_level(values, "MLTRAIL_CAPTURE")
        return cls(
            url=_server_url(values, "MLTRAIL_URL"),
            token=_explicit_token(values),
            saved_tokens=values.saved_tokens(),
            home=home,
            project=(values.get("MLTRAIL_PROJECT") or None),
            experiment=_number(values.get("MLTRAIL_EXPERIMENT")),
            job=_number(values.get("MLTRAIL_JOB")),
            strict=_flag(values.get("MLTRAIL_STRICT")),
            spool_limit_bytes=_bytes(values, "MLTRAIL_SPOOL_LIMIT_BYTES", cls.spool_limit_bytes),
            capture_console=capture != "off" and not _flag(values.get("MLTRAIL_NO_CAPTURE")),
            capture_fds=capture == "fd",
            artifacts=(values.get("MLTRAIL_ARTIFACTS") or None),
            artifact_max_file_bytes=_bytes(values, "MLTRAIL_ARTIFACT_MAX_FILE_BYTES", None),
            artifact_quota_bytes=_bytes(values, "MLTRAIL_ARTIFACT_QUOTA_BYTES", None),
            crash_after=_seconds(values, "MLTRAIL_CRASH_AFTER", DEFAULT_CRASH_AFTER_SECONDS),
            trash_days=_seconds(values, "MLTRAIL_TRASH_DAYS", DEFAULT_TRASH_DAYS),
            resume=_resume(values, "MLTRAIL_RESUME"),
            system_metrics=_switch(values, "MLTRAIL_SYSTEM_METRICS"),
            system_metrics_interval=_seconds(
                values, "MLTRAIL_SYSTEM_METRICS_INTERVAL", DEFAULT_SYSTEM_METRICS_SECONDS
            ),
            request_deadline=_optional_seconds(values, "MLTRAIL_REQUEST_DEADLINE"),
        )

    def to_env(self) -> dict[str, str]:
        """The ``MLTRAIL_*`` variables that make a child process's :meth:`from_env` return
        these settings (the inverse of :meth:`from_env`; defaults are left out)."""
        env = {"MLTRAIL_HOME": str(self.home)}
        optional = {
            "MLTRAIL_URL": self.url,
            "MLTRAIL_TOKEN": self.auth_token,  # bound to MLTRAIL_URL, set beside it
            "MLTRAIL_PROJECT": self.project,
            "MLTRAIL_EXPERIMENT": self.experiment,
            "MLTRAIL_JOB": self.job,
            "MLTRAIL_STRICT": "1" if self.strict else None,
            "MLTRAIL_NO_CAPTURE": None if self.capture_console else "1",
            "MLTRAIL_CAPTURE": None if self.capture_fds or not self.capture_console else "python",
            "MLTRAIL_ARTIFACTS": self.artifacts,
            "MLTRAIL_ARTIFACT_MAX_FILE_BYTES": self.artifact_max_file_bytes,
            "MLTRAIL_ARTIFACT_QUOTA_BYTES": self.artifact_quota_bytes,
            "MLTRAIL_RESUME": None if self.resume is None else "/".join(map(str, self.resume)),
            "MLTRAIL_SYSTEM_METRICS": None if self.system_metrics else "off",
            "MLTRAIL_REQUEST_DEADLINE": (
                None if self.request_deadline is None else repr(self.request_deadline)
            ),
        }
        env.update({name: str(value) for name, value in optional.items() if value is not None})
        if self.spool_limit_bytes != Settings.spool_limit_bytes:
            env["MLTRAIL_SPOOL_LIMIT_BYTES"] = str(self.spool_limit_bytes)
        if self.crash_after != DEFAULT_CRASH_AFTER_SECONDS:
            env["MLTRAIL_CRASH_AFTER"] = repr(self.crash_after)
        if self.trash_days != DEFAULT_TRASH_DAYS:
            env["MLTRAIL_TRASH_DAYS"] = repr(self.trash_days)
        if self.system_metrics_interval != DEFAULT_SYSTEM_METRICS_SECONDS:
            env["MLTRAIL_SYSTEM_METRICS_INTERVAL"] = repr(self.system_metrics_interval)
        return env

    def child_environ(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """``inherited`` without its ``MLTRAIL_*`` variables, plus :meth:`to_env`: what a child
        process (an agent's job, a demo trainer) is started with."""
        env = {k: v for k, v in inherited.items() if not k.startswith("MLTRAIL_")}
        env.update(self.to_env())
        return env

    @property
    def auth_token(self) -> str | None:
        """The token to send to :attr:`url`: the explicit :attr:`token`, else the one saved
        for that server (None when neither: no token leaves for a server it was not saved
        for)."""
        if self.token or self.url is None:
            return self.token
        key = server_key(self.url)
        return None if key is None else self.saved_tokens.get(key)

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def db_url(self) -> str:
        """The embedded store's SQLite URL."""
        return f"sqlite:///{self.home / 'mltrail.db'}"

    @property
    def config_file(self) -> Path:
        """The config file read below the environment: ``$MLTRAIL_HOME/config.toml``."""
        return self.home / CONFIG_FILE_NAME

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def artifacts_location(self) -> str:
        """Where artifact bytes go: ``artifacts``, else ``$MLTRAIL_HOME/artifacts``."""
        return self.artifacts or str(self.home / "artifacts")

    @property
    def upload_dir(self) -> Path:
        """Where the SDK keeps copies of files waiting to be uploaded."""
        return self.home / "uploads"

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


class _Values:
    """The settings' text by variable name, the environment over the config file, each value
    knowing where it came from, so an error names what the user wrote: the variable, or the
    file and its key."""

    def __init__(self, env: Mapping[str, str], config_file: Path) -> None:
        table, self._tokens = _read_config(config_file)
        self._in_file = {name: _config_text(value) for name, value in table.items()}
        env = _set_variables(env)
        self._values = {**self._in_file, **env}
        self._from_file = {name for name in self._in_file if name not in env}
        self._booleans = {n for n in self._from_file if isinstance(table[n], bool)}
        self._file = config_file

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def from_file(self, name: str) -> bool:
        """Whether the value of ``name`` is the config file's (no variable set it)."""
        return name in self._from_file

    def saved_tokens(self) -> dict[str, str]:
        """The file's tokens by server: its ``[tokens]``, and a bare ``token`` bound to the
        file's own ``url`` (what ``mltrail login`` wrote before ``[tokens]``); a bare token
        with no ``url`` beside it belongs to no server and is sent to none."""
        return _with_bare_token(self._tokens, self._in_file)

    def origin(self, name: str) -> str:
        """``MLTRAIL_X``, or ``<file>: x`` when the value came from the config file."""
        if name in self._from_file:
            return f"{self._file}: {name.removeprefix('MLTRAIL_').lower()}"
        return name

    def number_text(self, name: str) -> str:
        """The value of a numeric setting, stripped ("" when unset); ValueError for a toml
        boolean, which would read as 1 (``true``) or not a number (``false``)."""
        if name in self._booleans:
            raise ValueError(f"{self.origin(name)}: must be a number, got a boolean")
        return (self.get(name) or "").strip()


def _set_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The ``MLTRAIL_*`` variables that are set: an empty one (``MLTRAIL_URL=``, or only
    spaces) counts as unset, so the config file's value (or the default) applies, as it
    would have without the variable."""
    return {k: v for k, v in env.items() if k.startswith("MLTRAIL_") and v.strip()}


def _explicit_token(values: _Values) -> str | None:
    """``MLTRAIL_TOKEN`` from the environment, stripped (a token pasted with its newline);
    the file's bare ``token`` is a saved one (:meth:`_Values.saved_tokens`)."""
    if values.from_file("MLTRAIL_TOKEN"):
        return None
    return (values.get("MLTRAIL_TOKEN") or "").strip() or None


def _server_url(values: _Values, name: str) -> str | None:
    """``MLTRAIL_URL``, stripped; ValueError naming where it came from unless it is an
    http(s) URL with a host and a valid port (else a traceback from deep in httpx, or
    "cannot reach" for a typo)."""
    value = values.get(name)
    if not value:
        return None
    problem = url_problem(value.strip())
    if problem:
        raise ValueError(f"{values.origin(name)}: {problem}, got {value!r}")
    return value.strip()


def url_problem(url: str) -> str | None:
    """What makes ``url`` no server URL (None when it is one): the one check of
    ``MLTRAIL_URL``, ``mltrail login URL`` and ``mltrail sync --to URL``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises for a port not a number or out of range)
    except ValueError as exc:
        return f"must be an http:// or https:// URL ({exc})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "must not hold spaces or control characters"
    return None


def _number(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@overload
def _bytes(values: _Values, name: str, default: int) -> int: ...
@overload
def _bytes(values: _Values, name: str, default: None) -> int | None: ...


def _bytes(values: _Values, name: str, default: int | None) -> int | None:
    """A count of bytes; ValueError naming where it came from if it is not one (a limit
    ignored for a typo, "1e9" or "10GB", left the default in force unsaid)."""
    raw = values.number_text(name)
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{values.origin(name)}: must be a number of bytes, got {raw!r}")
    return int(raw)


def _capture_level(values: _Values, name: str) -> str:
    """``MLTRAIL_CAPTURE``: ``fd`` (the default), ``python`` or ``off``."""
    value = values.get(name)
    level = (value or "fd").strip().lower()
    if level not in CAPTURE_LEVELS:
        raise ValueError(f"{values.origin(name)} must be one of fd, python, off; got {value!r}")
    return level


def _seconds(values: _Values, name: str, default: float) -> float:
    """A positive, finite number of seconds; ValueError naming where it came from if bad."""
    raw = values.number_text(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{values.origin(name)}: must be a positive number of seconds, got {raw!r}"
        )
    return value


def _optional_seconds(values: _Values, name: str) -> float | None:
    """A positive number of seconds, or None when unset (each client's own default)."""
    return _seconds(values, name, math.nan) if values.number_text(name) else None


def read_config_file(path: Path) -> dict[str, str]:
    """The file's settings as ``MLTRAIL_*`` variables (strings, as the environment has them);
    empty when the file does not exist. Its ``[tokens]`` are :func:`read_saved_tokens`'."""
    return {name: _config_text(value) for name, value in _read_config(path)[0].items()}


def read_saved_tokens(path: Path) -> dict[str, str]:
    """The tokens the file keeps, by :func:`server_key` of the server each belongs to."""
    table, tokens = _read_config(path)
    return _with_bare_token(tokens, {n: _config_text(v) for n, v in table.items()})


def server_key(url: str) -> str | None:
    """Who a saved token belongs to: ``scheme://host:port/path`` of a server URL, the scheme
    and host in lower case, the port written out, no trailing ``/`` or ``/api/v1`` (the same
    server however it is spelled). None for no http(s) URL with a host, or one with user info
    or a backslash (``http://good\\@evil``: parsers disagree on its host), which no saved
    token is sent to."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:  # a port not a number or out of range, an unclosed "[::1"
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or "@" in parts.netloc or "\\" in text:
        return None
    host = parts.hostname
    if not host or any(c.isspace() or not c.isprintable() for c in text):
        return None
    host = f"[{host}]" if ":" in host else host
    path = parts.path.rstrip("/").removesuffix("/api/v1").rstrip("/")
    return f"{scheme}://{host}:{port}{path}"


def _with_bare_token(tokens: Mapping[str, str], in_file: Mapping[str, str]) -> dict[str, str]:
    """``tokens`` and the file's bare ``token``, bound to the file's ``url`` (a ``[tokens]``
    entry for that server wins: it is the newer)."""
    bare, url = in_file.get("MLTRAIL_TOKEN"), in_file.get("MLTRAIL_URL")
    key = server_key(url) if url else None
    if not bare or key is None:
        return dict(tokens)
    return {key: bare, **tokens}


def _read_config(path: Path) -> tuple[dict[str, object], dict[str, str]]:
    """The file's settings by ``MLTRAIL_*`` variable, as toml typed them, and its
    ``[tokens]`` by server key; empty when the file does not exist."""
    table = _load_toml(path)
    env = {}
    tokens = _tokens_table(path, table.pop(TOKENS_TABLE, {}))
    for key, value in table.items():
        if isinstance(value, (dict, list)):
            raise ValueError(f"{path}: {key}: must be a string, number or boolean")
        if key.lower() not in CONFIG_KEYS:  # a typo would be ignored silently otherwise
            raise ValueError(f"{path}: {key}: not a setting (one of {', '.join(CONFIG_KEYS)})")
        env[f"MLTRAIL_{key.upper()}"] = value
    return env, tokens


def _load_toml(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not a readable TOML file: {exc}") from None


def _tokens_table(path: Path, table: object) -> dict[str, str]:
    """``[tokens]``: server URL = token; ValueError naming the entry that is not."""
    if not isinstance(table, dict):
        raise ValueError(f"{path}: {TOKENS_TABLE}: must be a table of server URL = token")
    tokens = {}
    for url, token in table.items():
        key = server_key(url)
        if key is None or not isinstance(token, str) or not token.strip():
            raise ValueError(
                f"{path}: {TOKENS_TABLE}: {url!r}: must be an http(s) server URL = a token"
            )
        tokens[key] = token.strip()
    return tokens


def _config_text(value: object) -> str:
    return ("1" if value else "off") if isinstance(value, bool) else str(value)


def write_config_file(path: Path, changes: Mapping[str, str | float | bool]) -> None:
    """Set ``changes`` in the config file (other settings and saved tokens kept), readable by
    its owner only (0600: it may hold a token); written to a temporary file and renamed into
    place."""
    table = _load_toml(path)
    table.update(changes)
    _write_table(path, table)


def save_token(path: Path, url: str, token: str) -> None:
    """Make ``url`` the config file's server and save ``token`` in its ``[tokens]`` as that
    server's (tokens saved for other servers kept; a bare ``token`` moves into ``[tokens]``
    under the ``url`` it was saved with, and is dropped when that had none).

    Raises:
        ValueError: ``url`` is not a server a token can be saved for (:func:`server_key`).
    """
    key = server_key(url)
    if key is None:
        raise ValueError(f"{url!r}: not an http(s) server URL a token can be saved for")
    table = _load_toml(path)
    tokens = read_saved_tokens(path)
    tokens[key] = token
    table.pop("token", None)
    table.pop(TOKENS_TABLE, None)
    table["url"] = url
    table[TOKENS_TABLE] = tokens
    _write_table(path, table)


def _write_table(path: Path, table: Mapping[str, object]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    lines = [f"{key} = {_toml_value(value)}\n" for key, value in scalars.items()]
    tokens = table.get(TOKENS_TABLE)
    if isinstance(tokens, dict) and tokens:
        lines.append(f"\n[{TOKENS_TABLE}]\n")
        lines += [f"{_toml_value(k)} = {_toml_value(v)}\n" for k, v in tokens.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.chmod(partial, 0o600)  # also when it existed with wider permissions
    os.replace(partial, path)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    # a TOML basic string takes JSON's escapes; DEL is the one control character JSON leaves
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _resume(values: _Values, name: str) -> tuple[str, int] | None:
    """``MLTRAIL_RESUME=PROJECT/EXPERIMENT`` (the project an id or a display name)."""
    value = values.get(name)
    if not value:
        return None
    project, _, number = value.strip().rpartition("/")
    if not project or not number.isdigit() or int(number) < 1:
        raise ValueError(
            f"{values.origin(name)} must be PROJECT/EXPERIMENT (e.g. 1/3), got {value!r}"
        )
    return project, int(number)


def _switch(values: _Values, name: str) -> bool:
    """An on/off setting that is on unless set to 0, false, no or off."""
    value = values.get(name)
    text = (value or "on").strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(f"{values.origin(name)} must be on or off, got {value!r}")
    return _flag(text)


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")
