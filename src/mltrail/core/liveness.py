"""Liveness: how a run shows it is alive, and when it reads as ``crashed``.

A running experiment heartbeats: the SDK's writer thread records one every
:func:`heartbeat_interval` seconds (``store.record_heartbeat``), and an agent's lease
heartbeats record one for the job's experiment. Whoever reads the experiment (the server, or
any embedded-mode process: CLI, UI, a script) judges it at read time, with its own
``MLTRAIL_CRASH_AFTER``:

* stored ``running``, no job holding a live lease on it, and its last heartbeat older than
  ``crash_after`` seconds: it reads ``crashed``, with ``last_heartbeat`` saying since when;
* the same with a stop requested and no heartbeat for :func:`stop_grace` seconds: ``crashed``
  sooner, since a living process would have heartbeated (and honoured the stop) by then;
* a running experiment that never heartbeated (created before migration 0004, or through REST
  by a client that does not heartbeat) is never judged.

Nothing is written when a run is judged crashed, so embedded mode needs no sweeper process and
every reader agrees. A crashed run that heartbeats again (a long GC pause, a suspended laptop,
a network partition that healed) reads ``running`` again; the heartbeat that revives it adds a
``mltrail`` WARNING line to its logs saying how long it was silent. Followers that ended on
``crashed`` stay ended. Asking a crashed (or heartbeat-less) run to stop records ``stopped``
for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mltrail.core.types import Status

HEARTBEAT_SECONDS = 10.0  # the SDK's heartbeat period with the default crash_after
MIN_HEARTBEAT_SECONDS = 0.25
BEATS_PER_CRASH_WINDOW = 4  # heartbeats that can be missed before a run reads crashed
STOP_GRACE_BEATS = 3  # with a stop requested: missed heartbeats before it reads crashed


@dataclass(frozen=True)
class Liveness:
    """The store's answer to a heartbeat.

    Attributes:
        status: the experiment's stored status after the heartbeat.
        last_heartbeat: the unix time recorded.
        crash_after: the store's ``MLTRAIL_CRASH_AFTER``; the SDK beats a few times within it.
    """

    status: Status
    last_heartbeat: float
    crash_after: float


def heartbeat_interval(crash_after: float) -> float:
    """Seconds between heartbeats for a store that judges runs after ``crash_after`` seconds."""
    return max(min(HEARTBEAT_SECONDS, crash_after / BEATS_PER_CRASH_WINDOW), MIN_HEARTBEAT_SECONDS)


def stop_grace(crash_after: float) -> float:
    """Seconds without a heartbeat after which a run asked to stop reads crashed: a few of
    the heartbeats a living run sends (30 s with the default ``crash_after``)."""
    return min(crash_after, STOP_GRACE_BEATS * heartbeat_interval(crash_after))


def ending_note(status: Status, last_heartbeat: float | None) -> str | None:
    """The line a follower prints when the run it follows ended by crashing, else ``None``.

    ``experiment crashed: no heartbeat since 2026-11-28 12:00:01`` (local time).
    """
    if Status(status) is not Status.CRASHED:
        return None
    if last_heartbeat is None:
        return "experiment crashed: its process stopped heartbeating"
    since = datetime.fromtimestamp(last_heartbeat).strftime("%Y-%m-%d %H:%M:%S")
    return f"experiment crashed: no heartbeat since {since}"


def revival_note(silent_seconds: float, crash_after: float) -> str:
    """The log line recorded when a run that read crashed heartbeats again."""
    return (
        f"mltrail: heartbeat again after {silent_seconds:.0f} s without one; the run read as "
        f"crashed meanwhile (MLTRAIL_CRASH_AFTER={crash_after:g} s) and is running again"
    )
