"""Keep a claimed job's lease alive from a daemon thread, for the job's whole life.

Heartbeats go out every third of the lease from the claim until the report, so a job whose
output takes long to ship, or whose git checkout is slow, does not lose its lease. The replies
set events the supervising loop reads: a stop was requested, or the lease was lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mltrail.core.errors import MltrailError
from mltrail.core.jobs import HeartbeatReply

log = logging.getLogger("mltrail.agent")


class LeaseKeeper:
    """Heartbeats ``beat()`` every ``interval`` seconds until closed.

    Attributes:
        stop_requested: set once a heartbeat says someone asked the job to stop.
        lease_lost: set once a heartbeat says the job is no longer ours.
    """

    def __init__(self, beat: Callable[[], HeartbeatReply], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._closed = threading.Event()
        self.stop_requested = threading.Event()
        self.lease_lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mltrail-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                reply = self._beat()
            except MltrailError as exc:  # the server may be back at the next beat
                log.warning("heartbeat failed: %s", exc)
                continue
            if reply.lease_lost:
                self.lease_lost.set()
            if reply.stop_requested:
                self.stop_requested.set()

    def close(self) -> None:
        """Stop heartbeating (after the job was reported)."""
        self._closed.set()
        self._thread.join(10)

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
