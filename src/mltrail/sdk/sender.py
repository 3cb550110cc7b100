"""The writer's hand-over: one drain's batches are sent while the writer's thread cuts the next.

A drain's CPU work (taking the records, turning them into columns, packing the first batch)
ran between two store calls: while the writer's thread did it, the store had no batch to work
on (in the bench's one-run ingest, 1M points in batches of 50,000 to a server on SQLite, about
a tenth of the run). So the writer's thread hands each outbox it cut to a thread of its own
(:meth:`Sender.hand_over`) and goes back to its buffer; the next cut happens while that thread
waits for the store's answers.

What a drain guaranteed still holds. Only one outbox is ever being sent: a drain waits for
the one before to be sent (:meth:`Sender.wait`) before it sends or hands over its own, and
the cut happens under the writer's send lock, so batches reach the store in the order they
were numbered, one request at a time, each acknowledged after its commit; a retried one is
stored once. A flush or a close sends its drain itself, after the one handed over. At most
one cut outbox waits beside the one being sent, and none while the store stalls (the writer
waits before cutting then, so the points stay in the buffer its memory cap watches).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Sender:
    """Runs one drain's sending at a time on a thread of its own (one thread per outbox).

    Args:
        name: the threads' name.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the outbox handed over last is sent; False if ``timeout`` passed first."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def hand_over(self, send: Callable[[], None]) -> bool:
        """Run ``send`` on a new thread (the caller waited for the one before, holding the
        writer's send lock); False when no thread could be had: the caller sends itself."""
        thread = threading.Thread(target=send, name=self.name, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # a thread limit: the drain sends in turn, as it used to
            return False
        self._thread = thread
        return True
