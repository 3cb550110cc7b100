"""Delivery: what the writer's thread does with a batch once it is cut from the buffer.

A batch is sent with retries and backoff; when the store stays unreachable it goes to the
spool (through the spooler thread, :mod:`mltrail.sdk.spooler`), a batch the store refuses is
kept in ``spool/rejected/`` and never blocks the rest. While anything of the writer is spooled,
every batch goes behind it and the spool is replayed in file order. A run started offline asks
the store for its number every few seconds. None of this raises into training; in ``strict``
mode the first fault is kept in :attr:`Delivery.error` for the training thread to raise.

Liveness: the writer's thread, and only it, heartbeats (``store.record_heartbeat``) at its
first wake and then every :func:`~mltrail.core.liveness.heartbeat_interval` seconds of the
store's ``crash_after``, right after a drain and with no lock held; a failed heartbeat is
silent (the batches' own path warns about faults). So a run reads ``crashed`` once its process
dies, hangs outside Python or loses the store, however idle its training loop is.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mltrail.core.errors import MltrailError, TransportError
from mltrail.core.liveness import HEARTBEAT_SECONDS, heartbeat_interval
from mltrail.sdk.buffer import size_of
from mltrail.sdk.spool import RunAddress, Spool, SpoolWarning, is_transient
from mltrail.sdk.spooler import Spoolable, Spooler
from mltrail.sdk.sync import Destination, is_refusal, replay

if TYPE_CHECKING:
    from mltrail.store.base import Store

RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
NUMBER_RETRY_SECONDS = 2.0  # a run started offline asks the store for its number this often
SPOOLER_IDLE_WAIT = 5.0  # how long a replay waits for queued batches to reach the spool


class Delivery:
    """Sends a writer's batches to its store, or to its spool; the writer's base.

    Args:
        store: where batches go.
        address: the run written to (its ``ref`` is ``None`` until a run started offline is
            numbered) and the spool's name for the store.
        spool: where batches the store cannot take are kept.
        number_run: for a run started offline, creates its experiment (idempotently) and
            returns ``(project_id, experiment_id, target)``; tried while the run waits.
        strict: remember transport faults so the training thread can raise them.
        retry_delays: waits between attempts before a batch is spooled.
        spool_limit_points: points the spooler queues before it waits or drops the oldest.
    """

    def __init__(
        self,
        store: Store,
        address: RunAddress,
        *,
        spool: Spool,
        number_run: Callable[[], tuple[int, int, str]] | None,
        strict: bool,
        retry_delays: Sequence[float],
        spool_limit_points: int,
    ) -> None:
        self.store = store
        self.address = address
        self._first_target = address.target  # what the files spooled before numbering name
        self._number_run = number_run
        self._next_number_try = 0.0  # monotonic
        self.spool = spool
        self.strict = strict
        self.retry_delays = tuple(retry_delays)
        self.client_id = uuid.uuid4().hex
        self.error: BaseException | None = None  # strict mode: raised by the training thread
        self.spooled_batches = 0
        self.rejected_batches = 0  # refused by the store (4xx), kept in spool/rejected
        self._busy_since: float | None = None  # monotonic start of the store call in progress
        self._deadline: float | None = None
        self._spool_pending = address.ref is None  # offline: all to the spool until numbered
        self._unreachable = False  # the last delivery failed: try the next once, no retries
        self._warned_offline = False
        self._heartbeat_every = HEARTBEAT_SECONDS  # until the store says its crash_after
        self._next_heartbeat = 0.0  # monotonic; the first wake heartbeats
        self._spooler = Spooler(
            spool,
            address,
            self.client_id,
            limit_points=spool_limit_points,
            on_error=self._remember_spool_error,
        )

    @property
    def project_id(self) -> int:
        return self._ref()[0]

    @property
    def experiment_id(self) -> int:
        return self._ref()[1]

    @property
    def target(self) -> str:
        return self.address.target

    def _ref(self) -> tuple[int, int]:
        ref = self.address.ref
        assert ref is not None, "the run has no number yet"
        return ref

    def _remember_spool_error(self, exc: BaseException) -> None:
        if self.strict and self.error is None:
            self.error = exc

    # --- liveness (the writer's thread only, no lock held) --------------------------------------
    def _until_heartbeat(self) -> float:
        return max(self._next_heartbeat - time.monotonic(), 0.0)

    def _heartbeat(self) -> None:
        """Tell the store this run is alive; beat as often as its ``crash_after`` asks."""
        ref = self.address.ref
        if ref is None:  # started offline, no number yet: nothing to beat for
            self._next_heartbeat = time.monotonic() + self._heartbeat_every
            return
        self._busy_since = time.monotonic()  # a heartbeat that hangs is a stall too
        try:
            liveness = self.store.record_heartbeat(*ref)
            self._heartbeat_every = heartbeat_interval(liveness.crash_after)
        except Exception:  # unreachable or refused: the batches' path says so, and retries
            pass
        finally:
            self._busy_since = None
        self._next_heartbeat = time.monotonic() + self._heartbeat_every

    # --- sending (the writer's thread, no lock held) --------------------------------------------
    def _deliver(
        self, encode: Callable[[Any], dict], batch: Any, call: Callable[..., Any], stamp: int
    ) -> None:
        """Send with retries; spool when the store stays unreachable. Never raises.

        ``stamp`` (:func:`~mltrail.sdk.spool.order_stamp`) is when the batch was cut from the
        buffer; spooled, it sorts by it.
        """
        fault: BaseException | None = None
        self._busy_since = time.monotonic()  # retries included: a stall is a stall
        delays = (0.0,) if self._unreachable else (0.0, *self.retry_delays)
        try:
            for delay in delays:
                if delay and not self._may_wait(delay):
                    break
                try:
                    call(self.project_id, self.experiment_id, batch)
                    self._unreachable = False
                    return
                except Exception as exc:
                    fault = exc
                    if isinstance(exc, MltrailError) and is_refusal(exc):  # a poison batch:
                        self._reject(exc, encode(batch))  # never retried, never blocks the rest
                        return
                    if not is_transient(exc):
                        break
        finally:
            self._busy_since = None
        self._to_spool(encode, batch, fault, stamp)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    def _may_wait(self, delay: float) -> bool:
        if self._deadline is not None and time.monotonic() + delay > self._deadline:
            return False
        time.sleep(delay)
        return True

    def _replay_spooled(self, *, final: bool) -> bool:
        """Replay the spool in file order (``final``: at close, number an offline run now)."""
        if self.address.ref is None and not self._try_number(final=final):
            return False
        if not self._spooler.wait_idle(SPOOLER_IDLE_WAIT):  # older batches still on their way
            return False
        ref, run = self.address.ref, self.address.run
        runs = {run: ref} if run is not None and ref is not None else {}
        here = Destination(self.address.target, self._first_target)
        self._busy_since = time.monotonic()
        try:
            result = replay(self.spool, self.store, here, client_id=self.client_id, runs=runs)
        except Exception:
            return False
        finally:
            self._busy_since = None
        self._spool_pending = result.remaining > 0
        return not self._spool_pending

    def _try_number(self, *, final: bool = False) -> bool:
        """Ask the store to number a run started offline (at most every few seconds, and once
        more at the end); from then on its batches go to the store, the spooled ones first."""
        now = time.monotonic()
        if self._number_run is None or (now < self._next_number_try and not final):
            return False
        self._next_number_try = now + NUMBER_RETRY_SECONDS
        self._busy_since = now
        try:
            p, e, target = self._number_run()
        except Exception:  # unreachable still (or refused: the spool keeps it for `sync`)
            return False
        finally:
            self._busy_since = None
        self.address.target = target  # before the ref: a reader seeing the ref sees it
        self.address.ref = (p, e)
        self._next_heartbeat = 0.0  # beat at the next wake
        return True

    def _to_spool(
        self, encode: Callable[[Any], dict], batch: Any, fault: BaseException | None, stamp: int
    ) -> None:
        """Queue a batch for the spooler (writer thread, no lock held), warn once if offline."""
        if self.strict and fault is not None and self.error is None:
            self.error = TransportError(f"store unreachable, batch spooled: {fault}")
        size, kind = size_of(batch)
        self._spooler.put(Spoolable(encode, batch, size, kind, stamp))
        self.spooled_batches += 1
        if fault is not None:  # the next batch tries once, not with the retries
            self._unreachable = True
        self._spool_pending = True
        if not self._warned_offline:
            self._warned_offline = True
            why = f"unreachable ({fault})" if fault is not None else "stalled"
            warnings.warn(
                f"mltrail: the store is {why}; unsent batches are kept in "
                f"{self.spool.directory} and uploaded by `mltrail sync` or the next run",
                SpoolWarning,
                stacklevel=1,
            )

    def _reject(self, exc: MltrailError, record: dict) -> None:
        """Keep a batch the store refused in ``spool/rejected/`` with its answer; warn naming it
        (writer thread, no lock held)."""
        if self.strict and self.error is None:
            self.error = exc
        where = self.spool.keep_refused(self.address, self.client_id, record, exc)
        self.rejected_batches += 1
        warnings.warn(
            f"mltrail: the store refused a {record['kind']} batch ({exc}); it was not stored "
            f"and later batches go on. Kept in {where}",
            SpoolWarning,
            stacklevel=1,
        )
