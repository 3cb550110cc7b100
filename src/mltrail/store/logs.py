"""The log lines noun of the Store: idempotent batch appends, paged reads, tails to follow."""

from __future__ import annotations

import abc

from mltrail.core.types import LogBatch, LogLine, LogPage, LogTail

READ_LIMIT = 10_000
MAX_WAIT_SECONDS = 30.0


class LogStore(abc.ABC):
    """Captured console and logging lines of experiments."""

    @abc.abstractmethod
    def append_logs(self, project_id: int, experiment_id: int, batch: LogBatch) -> int:
        """Store log lines in order; returns lines stored, 0 when (client_id, seq) was seen."""

    @abc.abstractmethod
    def read_logs(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, limit: int = READ_LIMIT
    ) -> list[LogLine]:
        """Log lines with seq > after_seq, oldest first."""

    def read_log_page(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, limit: int = READ_LIMIT
    ) -> LogPage:
        """:meth:`read_logs` as columns (a store that can skips a LogLine per line)."""
        return LogPage.of_lines(
            self.read_logs(project_id, experiment_id, after_seq=after_seq, limit=limit)
        )

    @abc.abstractmethod
    def tail_logs(
        self,
        project_id: int,
        experiment_id: int,
        *,
        after_seq: int = 0,
        limit: int = READ_LIMIT,
        wait: float = 0.0,
    ) -> LogTail:
        """Lines after ``after_seq`` with the experiment's status; what followers read.

        Waits up to ``wait`` seconds (at most ``MAX_WAIT_SECONDS``) for a line while the run is
        live. ``LogTail.ended`` is the end condition every follower uses (the CLI, the UI's
        stream, later surfaces).
        """
