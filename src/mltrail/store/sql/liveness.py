"""The crashed status, judged at read time: the SQL form of ``core/liveness.py``'s rules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, literal, or_

from mltrail.core.liveness import stop_grace
from mltrail.core.types import Status
from mltrail.store.sql.tables import experiments, jobs


@dataclass(frozen=True)
class Judge:
    """What a read judges liveness by: the time now and the reader's ``crash_after``."""

    now: float
    crash_after: float

    @classmethod
    def stored(cls, now: float) -> Judge:
        """A judge that reports stored statuses (for writes whose answer nobody reads)."""
        return cls(now, math.inf)

    def status(self) -> ColumnElement[Any]:
        """The status as reported: ``crashed`` for a running experiment whose heartbeats
        stopped (see ``core/liveness.py``), else the stored one."""
        c = experiments.c
        if not math.isfinite(self.crash_after):
            return c.status
        silent = or_(
            c.last_heartbeat < self.now - self.crash_after,
            and_(c.stop_requested, c.last_heartbeat < self.now - stop_grace(self.crash_after)),
        )
        crashed = and_(c.status == Status.RUNNING.value, silent, ~self.leased())
        return case((crashed, literal(Status.CRASHED.value)), else_=c.status)

    def leased(self) -> Any:
        """Whether a job holds a live lease on the experiment: its agent heartbeats for it."""
        return exists().where(
            jobs.c.experiment_id == experiments.c.id,
            jobs.c.status == Status.RUNNING.value,
            jobs.c.lease_expires_at >= self.now,
        )
