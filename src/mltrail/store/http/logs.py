"""The log lines half of HttpStore: batches in, pages and long-polled tails out."""

from __future__ import annotations

from mltrail.core import codec
from mltrail.core.types import LogBatch, LogLine, LogTail
from mltrail.store.http.transport import HttpNoun
from mltrail.store.logs import MAX_WAIT_SECONDS, READ_LIMIT, LogStore


class HttpLogs(HttpNoun, LogStore):
    """The logs half of HttpStore: each :class:`LogStore` method is one request."""

    def append_logs(self, project_id: int, experiment_id: int, batch: LogBatch) -> int:
        self._require_client_id(batch)
        path = self._experiment_path(project_id, experiment_id) + "/logs"
        body = codec.log_batch_to_wire(batch)
        return int(self._http.call("POST", path, body=body, repeatable=True)["stored"])

    def read_logs(
        self, project_id: int, experiment_id: int, *, after_seq: int = 0, limit: int = READ_LIMIT
    ) -> list[LogLine]:
        return list(
            self.tail_logs(project_id, experiment_id, after_seq=after_seq, limit=limit).lines
        )

    def tail_logs(
        self,
        project_id: int,
        experiment_id: int,
        *,
        after_seq: int = 0,
        limit: int = READ_LIMIT,
        wait: float = 0.0,
    ) -> LogTail:
        path = self._experiment_path(project_id, experiment_id) + "/logs"
        wait = min(max(float(wait), 0.0), MAX_WAIT_SECONDS)
        params = {"after_seq": after_seq, "limit": limit, "wait": wait or None}
        timeout = self._http.read_timeout + wait
        found = self._http.call("GET", path, params=params, repeatable=True, timeout=timeout)
        return codec.log_tail_from_wire(found)
