"""Jobs and agents: their types, limits and parse constructors (pure, no I/O).

The store's ``JobStore`` and ``AgentStore`` (``store/jobs.py``, ``store/agents.py``) work on
these; the CLI, the agent, the server and both stores share them.

A job's life: ``submit_job`` creates the experiment (status ``queued``) and the job; an agent's
``claim_job`` takes the oldest queued job of its queues atomically and holds a lease on it;
``heartbeat`` extends the lease and tells the agent whether a stop was requested; ``finish_job``
records the exit. When an agent stops heartbeating, ``expire_leases`` re-queues the job while
``max_retries`` allows, else marks it failed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mltrail.core.errors import ValidationError
from mltrail.core.types import Status

DEFAULT_QUEUE = "default"
MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024  # base64 in a JSON body stays under the server limit
MAX_COMMAND_ARGS = 1000
MAX_COMMAND_CHARS = 100_000
MAX_RETRIES = 100
MIN_LEASE_SECONDS = 1.0
MAX_LEASE_SECONDS = 3600.0
DEFAULT_LEASE_SECONDS = 30.0
MAX_WAIT_SECONDS = 60.0
MAX_DB_ID = 2**31 - 1  # ids are 32-bit database integers

_QUEUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_AGENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$")
_SOURCE_KINDS = ("none", "git", "tarball")
FINAL_JOB_STATUSES = (Status.DONE, Status.FAILED, Status.STOPPED)


@dataclass(frozen=True)
class Job:
    """A command to run for a project, and where it stands.

    Attributes:
        source: ``{"kind": "none"}``, ``{"kind": "git", "url": ..., "commit": ...}`` or
            ``{"kind": "tarball", "size": n, "sha256": ...}`` (the bytes via get_job_snapshot).
        agent_id: the agent holding the lease while running, the last one after.
        attempts: how many times an agent claimed it.
        queue_served: filled by list_jobs: whether a live agent that would run this job
            (see :func:`agent_accepts`) serves its queue.
        token: only in a claim's answer: the job's own token, minted at the claim, acting for
            the user who queued the job, limited to its project (and, for writes, its
            experiment), valid while this attempt holds its lease. Stored hashed.
        user_id: who queued the job (``None`` in embedded mode).
    """

    job_id: int
    project_id: int
    experiment_id: int
    queue: str
    command: tuple[str, ...]
    env: dict[str, str]
    source: dict[str, Any]
    status: Status
    created_at: float
    max_retries: int = 0
    attempts: int = 0
    agent_id: str | None = None
    exit_code: int | None = None
    error: str | None = None
    claimed_at: float | None = None
    ended_at: float | None = None
    lease_expires_at: float | None = None
    queue_served: bool | None = None
    token: str | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class Agent:
    """An agent as last seen. ``alive`` is computed when read: seen within its lease.

    Attributes:
        projects: the projects its owner started it for (``mltrail agent --project``): it runs
            the jobs of these projects, and otherwise only jobs its owner queued.
    """

    agent_id: str
    name: str
    queues: tuple[str, ...]
    lease_seconds: float
    registered_at: float
    last_seen_at: float
    job_id: int | None = None
    alive: bool = True
    projects: tuple[int, ...] = ()


@dataclass(frozen=True)
class HeartbeatReply:
    """What an agent learns from a heartbeat.

    Attributes:
        stop_requested: someone asked the job's experiment to stop.
        lease_lost: the job is no longer this agent's (its lease expired): kill it, do not report.
    """

    stop_requested: bool = False
    lease_lost: bool = False


@dataclass(frozen=True)
class JobSpec:
    """A validated submission, as ``submit_job`` stores it."""

    command: tuple[str, ...]
    queue: str = DEFAULT_QUEUE
    env: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    max_retries: int = 0


# --- input checks ------------------------------------------------------------------------------
def queue_name(value: Any, field_name: str = "queue") -> str:
    """A queue name: letters, digits, ``_.-``, 1-100 characters, not starting with a symbol."""
    if not isinstance(value, str) or not _QUEUE_RE.match(value):
        raise ValidationError(
            f"must be 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit, got {value!r}",
            field_name,
        )
    return value


def queue_names(values: Any) -> tuple[str, ...]:
    """One or more queue names, deduplicated in order; empty means the default queue."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise ValidationError("must be a list of queue names", "queues")
    names = tuple(dict.fromkeys(queue_name(v, "queues") for v in values))
    return names or (DEFAULT_QUEUE,)


def command_args(value: Any) -> tuple[str, ...]:
    """A non-empty argv list of strings without NUL characters."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ValidationError("must be a non-empty list of arguments", "command")
    if len(value) > MAX_COMMAND_ARGS:
        raise ValidationError(f"must have at most {MAX_COMMAND_ARGS} arguments", "command")
    for i, arg in enumerate(value):
        if not isinstance(arg, str):
            raise ValidationError(
                f"argument {i} must be a string, got {type(arg).__name__}", "command"
            )
        if "\x00" in arg:
            raise ValidationError(f"argument {i} must not contain NUL characters", "command")
    if not value[0].strip():
        raise ValidationError("the program name must not be empty", "command")
    if sum(len(a) for a in value) > MAX_COMMAND_CHARS:
        raise ValidationError(f"must be at most {MAX_COMMAND_CHARS} characters in all", "command")
    return tuple(value)


def env_vars(value: Any) -> dict[str, str]:
    """Environment variables for the job: a mapping or ``K=V`` strings; MLTRAIL_* is reserved."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        pairs: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise ValidationError(f"must be KEY=VALUE, got {item!r}", "env")
            key, _, val = item.partition("=")
            pairs[key] = val
        value = pairs
    if not isinstance(value, Mapping):
        raise ValidationError("must be a mapping of names to values", "env")
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
            raise ValidationError(f"invalid variable name {key!r}", "env")
        if key.upper().startswith("MLTRAIL_"):
            raise ValidationError(f"{key} is set by the agent and may not be overridden", "env")
        if not isinstance(val, str) or "\x00" in val:
            raise ValidationError(f"value of {key} must be a string without NUL characters", "env")
        out[key] = val
    return out


def job_source(value: Any) -> dict[str, Any]:
    """Where the job's working directory comes from."""
    if value is None:
        return {"kind": "none"}
    if not isinstance(value, Mapping) or value.get("kind") not in _SOURCE_KINDS:
        raise ValidationError(
            f"must be an object with kind one of {', '.join(_SOURCE_KINDS)}", "source"
        )
    if value["kind"] == "git":
        url, commit = value.get("url"), value.get("commit")
        if not isinstance(url, str) or not url or url.startswith("-"):
            raise ValidationError("git source needs a repository url", "source.url")
        if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{7,64}", commit):
            raise ValidationError("git source needs a hexadecimal commit id", "source.commit")
        return {"kind": "git", "url": url, "commit": commit}
    return dict(value)


def snapshot_bytes(value: Any) -> bytes | None:
    """A tarball of the working directory, bounded by MAX_SNAPSHOT_BYTES."""
    if value is None:
        return None
    if not isinstance(value, (bytes, bytearray)):
        raise ValidationError("must be bytes", "snapshot")
    if len(value) > MAX_SNAPSHOT_BYTES:
        raise ValidationError(
            f"is {len(value)} bytes, over the limit of {MAX_SNAPSHOT_BYTES} bytes", "snapshot"
        )
    return bytes(value)


def retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise ValidationError(
            f"must be an integer from 0 to {MAX_RETRIES}, got {value!r}", "max_retries"
        )
    return value


def lease_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("must be a number of seconds", "lease_seconds")
    if not MIN_LEASE_SECONDS <= float(value) <= MAX_LEASE_SECONDS:
        raise ValidationError(
            f"must be from {MIN_LEASE_SECONDS:g} to {MAX_LEASE_SECONDS:g} seconds, got {value}",
            "lease_seconds",
        )
    return float(value)


def agent_id(value: Any) -> str:
    if not isinstance(value, str) or not _AGENT_ID_RE.match(value):
        raise ValidationError(f"must be 1-100 letters, digits or '_.:-', got {value!r}", "agent_id")
    return value


def project_ids(values: Any) -> tuple[int, ...]:
    """The projects an agent is started for: ids >= 1, deduplicated in order."""
    if values is None:
        return ()
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise ValidationError("must be a list of project ids", "projects")
    out: list[int] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DB_ID:
            raise ValidationError(
                f"must be project ids from 1 to {MAX_DB_ID}, got {value!r}", "projects"
            )
        out.append(value)
    return tuple(dict.fromkeys(out))


def agent_accepts(
    owner_id: int | None, agent_projects: tuple[int, ...], job_user_id: int | None, job_project: int
) -> bool:
    """Whether an agent may run a job: its owner queued it, or its owner started it for the
    job's project (the owner's membership of that project is checked by the claim's scope).
    An agent of the embedded store (no owner) runs every job of its store."""
    if owner_id is None:
        return True
    return job_user_id == owner_id or job_project in agent_projects


def final_status(value: Any) -> Status:
    """The status an agent may report at the end: done, failed or stopped."""
    for status in FINAL_JOB_STATUSES:
        if value == status or value == status.value:
            return status
    raise ValidationError(f"must be one of done, failed, stopped, got {value!r}", "status")


def job_spec(
    command: Any,
    *,
    queue: Any = DEFAULT_QUEUE,
    env: Any = None,
    source: Any = None,
    max_retries: Any = 0,
) -> JobSpec:
    """Check a whole submission at once, so nothing is written when any part is wrong."""
    return JobSpec(
        command=command_args(command),
        queue=queue_name(queue),
        env=env_vars(env),
        source=job_source(source),
        max_retries=retries(max_retries),
    )


def is_alive(last_seen_at: float, lease: float, now: float | None = None) -> bool:
    """An agent is alive when it was seen within its lease (with a little slack for polling)."""
    now = time.time() if now is None else now
    return now - last_seen_at <= lease + 2.0
