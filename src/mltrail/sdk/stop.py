"""The stop watcher: notices within seconds that someone asked a running experiment to stop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrail.sdk.spool import RunAddress
    from mltrail.store.base import Store

POLL_SECONDS = 2.0


class StopWatcher:
    """A daemon thread asking the store every ``interval`` seconds whether to stop.

    Args:
        store: the experiment's store.
        address: the experiment watched (not asked about while a run started offline has
            no number).
        on_request: called once, from this thread, when the request is seen.
        interval: seconds between checks.
    """

    def __init__(
        self,
        store: Store,
        address: RunAddress,
        on_request: Callable[[], None],
        interval: float = POLL_SECONDS,
    ) -> None:
        self._store = store
        self._address = address
        self._on_request = on_request
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mltrail-stop", daemon=True)

    def start(self) -> StopWatcher:
        self._thread.start()
        return self

    def close(self) -> None:
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._interval + 1)

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            ref = self._address.ref
            if ref is None:
                continue
            try:
                requested = self._store.get_experiment(*ref).stop_requested
            except Exception:  # an unreachable store is the writer's business, not ours
                continue
            if requested:
                self._on_request()
                return
