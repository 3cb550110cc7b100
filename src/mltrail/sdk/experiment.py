"""``mltrail.start()`` and the :class:`Experiment` training code records into.

One hop per point: ``exp.log`` validates cheaply (keys are checked once and remembered) and
appends to the background :class:`~mltrail.sdk.writer.Writer`; the writer calls the store.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mltrail.config import Settings
from mltrail.core import validation
from mltrail.core.errors import ExperimentStopped, ValidationError
from mltrail.core.html import html_card
from mltrail.core.points import MAX_EPOCH
from mltrail.core.types import ExperimentRef, LogLine, Phase, Status
from mltrail.core.weights import weights_hash
from mltrail.sdk.annotations import Annotations
from mltrail.sdk.artifact_logging import ArtifactLogging
from mltrail.sdk.buffer import MAX_INT64
from mltrail.sdk.console import ConsoleCapture
from mltrail.sdk.inputs import NO_LAYOUT, Layouts, jsonable, params_mapping
from mltrail.sdk.offline import RunSpec, end_offline, number_run
from mltrail.sdk.opening import epoch_field, int64_field, store_target
from mltrail.sdk.resume import StoredSteps
from mltrail.sdk.spool import Spool, is_transient, target_of
from mltrail.sdk.start import start as start  # where code has imported it from
from mltrail.sdk.status import record_final_status
from mltrail.sdk.stop import POLL_SECONDS, StopWatcher
from mltrail.sdk.sync import sync_in_background
from mltrail.sdk.system import system_sampler
from mltrail.sdk.uploads import Uploader
from mltrail.sdk.writer import CLOSE_TIMEOUT_SECONDS, Writer

if TYPE_CHECKING:
    from types import TracebackType

    from mltrail.core.types import Experiment as ExperimentRecord
    from mltrail.store.base import Store

_PHASES = frozenset(p.value for p in Phase)
_MAX_INT64 = MAX_INT64
_now = time.time


class Experiment(ArtifactLogging, Annotations):
    """A running experiment: log metrics, weights hashes, files and console output into it.

    Use it as a context manager, or call :meth:`end`; an experiment still running at
    interpreter exit is ended then (failed if an exception went uncaught).
    """

    def __init__(
        self,
        store: Store,
        record: ExperimentRecord | None,
        *,
        spec: RunSpec,
        settings: Settings,
        owns_store: bool = False,
        on_stop: Callable[[], None] | None = None,
        stop_poll_seconds: float = POLL_SECONDS,
        stored: StoredSteps | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.display_name = spec.display_name if record is None else record.display_name
        self._spec = spec
        # held while a run started offline is numbered and while set_hyperparams decides whether
        # the run has a number: values set before numbering travel in the spec, never lost
        self._numbering = threading.Lock()
        self._started_offline = record is None
        self.status = Status.RUNNING
        self._owns_store = owns_store
        self._on_stop = on_stop
        self._stored = stored or StoredSteps(())  # a resumed run's series ends
        self._iteration = self._stored.horizon  # -1: nothing logged yet
        self._epoch = self._stored.last_epoch  # -1: no epoch known yet
        self._layouts = Layouts()  # the key sets logged, checked
        self._layout = NO_LAYOUT  # how exp.log reads the last call's keys; one tuple: atomic
        self._ended = False
        self._warned_after_end = False
        self._stop_requested = False
        self._lock = threading.Lock()
        self._writer = Writer(
            store,
            None if record is None else record.project_id,
            None if record is None else record.experiment_id,
            spool=Spool.from_settings(settings),
            target=target_of(settings) if record is None else store_target(store, settings),
            run=spec.run,
            number_run=self._number_run if record is None else None,
            strict=settings.strict,
        ).start()
        self._uploads = Uploader(
            store,
            self._writer.address,
            spool=self._writer.spool,
            client_id=f"{self._writer.client_id}u",  # its own spool files, replayed by sync
            on_weights_hash=self._writer.add_link,
            folder=settings.upload_dir / self._writer.client_id,
        )
        self._console = (
            ConsoleCapture(self._writer.add_line, fd_level=settings.capture_fds).start()
            if settings.capture_console
            else None
        )
        self._watcher = StopWatcher(
            store, self._writer.address, self._stop_seen, stop_poll_seconds
        ).start()
        self._system = system_sampler(
            settings, self._writer, lambda: (self._iteration, self._epoch)
        )
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._excepthook
        atexit.register(self._at_exit)
        if record is not None:
            sync_in_background(store, settings)

    # --- identity ------------------------------------------------------------------------------
    @property
    def project_id(self) -> int | None:
        """The project's id; ``None`` while a run started offline in a project given by name
        has no number yet."""
        ref = self._writer.address.ref
        return self._spec.project_id if ref is None else ref[0]

    @property
    def experiment_id(self) -> int | None:
        """The experiment's number in its project; ``None`` while a run started offline waits
        for the server to number it (:attr:`run_id` names it meanwhile)."""
        ref = self._writer.address.ref
        return None if ref is None else ref[1]

    @property
    def run_id(self) -> str:
        """The id this client generated for the run (the experiment's ``client_id``)."""
        return self._spec.run

    @property
    def ref(self) -> ExperimentRef:
        ref = self._writer.address.ref
        if ref is None:
            raise ValidationError(f"run {self.run_id} started offline has no number yet", "ref")
        return ExperimentRef(*ref)

    def _number_run(self) -> tuple[int, int, str]:
        """Create a run started offline at the store (idempotent); the writer calls it."""
        target = store_target(self.store, self.settings)
        with self._numbering:
            p, e, _ = number_run(self.store, self._writer.spool, self._spec, target)
            self._writer.address.target = target  # the writer sets both again: same values
            self._writer.address.ref = (p, e)
        return p, e, target

    @property
    def iteration(self) -> int:
        """The last iteration logged (-1 before the first)."""
        return self._iteration

    @property
    def epoch(self) -> int | None:
        """The current epoch, if known."""
        return None if self._epoch < 0 else self._epoch

    @property
    def client_id(self) -> str:
        return self._writer.client_id

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def __repr__(self) -> str:
        return (
            f"<Experiment project={self.project_id} experiment={self.experiment_id} "
            f"{self.display_name!r} {self.status.value}>"
        )

    def _repr_html_(self) -> str:
        """A card for Jupyter: the run's identity, status and progress, linked to the UI."""
        fields = {
            "project": self.project_id,
            "experiment": self.experiment_id,
            "status": self.status.value,
            "iteration": self._iteration if self._iteration >= 0 else None,
            "epoch": self.epoch,
            "store": self.settings.url or str(self.settings.home / "mltrail.db"),
        }
        link = self.settings.url and (
            f"{self.settings.url}/#/projects/{self.project_id}/experiments/{self.experiment_id}"
        )
        return html_card(f"mltrail experiment {self.display_name}", fields, link or None)

    # --- logging -------------------------------------------------------------------------------
    def log(
        self,
        metrics: Mapping[str, float],
        iteration: int | None = None,
        epoch: int | None = None,
        phase: str = "train",
    ) -> None:
        """Record metric values at one step. Only appends to memory; a thread sends them.

        Args:
            metrics: metric name to number (NaN and infinities are valid values).
            iteration: the global batch counter; without it, a ``train`` call counts up by one
                and other phases use the current iteration.
            epoch: the epoch; without it, the last one given (or ended by ``epoch_end``).
            phase: ``train``, ``validation`` or ``test``.

        Raises:
            ValidationError: (a ``ValueError``) a bad value, key, phase or iteration.
            ExperimentStopped: a stop was requested and no ``on_stop`` callback was given
                (the values of this call are recorded first).
        """
        if self._ended:
            self._warn_after_end()
            return
        if phase not in _PHASES:
            phase = validation.phase(phase)
        # everything is checked before any state changes. The common case, a dict of the last
        # call's keys (in any order) to floats: its values read in the order of those keys,
        # which are the record's (see mltrail.sdk.buffer); a dict of keys logged before: read
        # through their layout; anything else goes through the full checks first
        count, keys, read = self._layout
        values = None
        if type(metrics) is dict and len(metrics) == count:
            try:
                values = read(metrics)
            except KeyError:  # other keys
                pass
            else:
                if count == 1:
                    values = (values,)
                for value in values:
                    if type(value) is not float:
                        values = None
                        break
        if values is None:
            layout, values = self._layouts.read(metrics)
            keys, self._layout = layout[1], layout
        if epoch is None:
            epoch = self._epoch
        elif type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            epoch = epoch_field(epoch)
        if iteration is None and phase == "train":  # the common cases, inlined
            iteration = self._iteration = self._iteration + 1
        elif type(iteration) is int and 0 <= iteration <= _MAX_INT64:
            self._iteration = iteration
        else:
            iteration = self._next_iteration(iteration, phase)
        self._epoch = epoch
        if iteration <= self._stored.horizon:  # a resumed run logging a stored step again
            kept = self._stored.new_only(dict(zip(keys, values, strict=True)), phase, iteration)
            if not kept:
                return
            keys, values = tuple(kept), tuple(kept.values())
        writer = self._writer
        writer.add_record(phase, iteration, epoch, _now(), keys, values)
        if self._stop_requested or writer.error is not None:
            self._raise_pending()

    def _next_iteration(self, iteration: int | None, phase: str) -> int:
        if iteration is None:
            if phase == "train":
                self._iteration += 1
            return self._iteration if self._iteration >= 0 else 0
        if type(iteration) is not int or not 0 <= iteration <= _MAX_INT64:
            iteration = int64_field(iteration, "iteration")
        self._iteration = iteration
        return iteration

    def _set_epoch(self, epoch: int) -> int:
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            epoch = epoch_field(epoch)
        self._epoch = epoch
        return epoch

    def _raise_pending(self) -> None:
        error = self._writer.error
        if error is not None and self.settings.strict:
            self._writer.error = None
            raise error
        if self._stop_requested and self._on_stop is None:
            raise ExperimentStopped(
                f"experiment {self.project_id}/{self.experiment_id} was asked to stop", "experiment"
            )

    def set_hyperparams(self, params: Mapping[str, Any] | None = None, **more: Any) -> None:
        """Add or change hyperparameters (merged into those already recorded)."""
        values = jsonable({**params_mapping(params), **more})
        if not values:
            return
        if self._offline_change(lambda spec: spec.hyperparameters.update(values)):
            return
        self._store_call(
            lambda: self.store.update_experiment(
                self.ref.project_id, self.ref.experiment_id, hyperparameters=values
            )
        )

    def _offline_change(self, change: Callable[[RunSpec], None]) -> bool:
        """Apply ``change`` to the spec of a run started offline and not yet numbered (it
        travels in the spool to the run's creation); False once the run has its number."""
        with self._numbering:
            if self._writer.address.ref is not None:
                return False
            change(self._spec)
            with contextlib.suppress(OSError):  # the spool says what it cannot keep
                self._spec.save(self._writer.spool)
            return True

    def log_weights(
        self, model: Any, iteration: int | None = None, epoch: int | None = None
    ) -> str:
        """Hash the model's weights and link the hash to this point of the experiment.

        Args:
            model: a PyTorch module or state_dict, a Keras model, or a list/dict of arrays.
            iteration: defaults to the current iteration.
            epoch: defaults to the current epoch.

        Returns:
            The weights hash (see :func:`mltrail.weights_hash`).
        """
        digest = weights_hash(model)
        if self._ended:
            self._warn_after_end()
            return digest
        self._writer.add_link(digest, *self._point(iteration, epoch))
        return digest

    def _point(self, iteration: int | None, epoch: int | None) -> tuple[int, int | None]:
        """(iteration, epoch) given, or the current ones."""
        it = (
            max(self._iteration, 0)
            if iteration is None
            else validation.require_int(iteration, "iteration", minimum=0)
        )
        ep = self.epoch if epoch is None else epoch_field(epoch)
        return it, ep

    def epoch_end(
        self,
        metrics: Mapping[str, float] | None = None,
        *,
        model: Any = None,
        epoch: int | None = None,
        phase: str = "validation",
    ) -> str | None:
        """Close an epoch: log its metrics, link the model's weights hash, count the epoch up.

        Args:
            metrics: epoch metrics (validation by default), logged at the current iteration.
            model: when given, its weights hash is linked to this epoch and returned.
            epoch: the epoch ending; the current one (0 at first) by default.
            phase: the phase of ``metrics``.

        Returns:
            The weights hash, or ``None`` without a model.
        """
        ended = self._set_epoch(epoch) if epoch is not None else max(self._epoch, 0)
        if metrics:
            self.log(metrics, epoch=ended, phase=phase)
        digest = self.log_weights(model, epoch=ended) if model is not None else None
        self._epoch = ended + 1
        return digest

    def flush(self) -> None:
        """Send everything buffered now (normally the background thread does this)."""
        self._writer.flush()

    def rewind(self, iteration: int) -> int:
        """Go back to ``iteration`` (resuming from an earlier checkpoint): every stored point
        after it is discarded, in all series at once, and the iteration counter continues
        from it. The discarded points are not kept (no fork). Waits for what was logged
        before to be stored, then makes one store call.

        Args:
            iteration: the last iteration kept.

        Returns:
            How many stored points were discarded.

        Raises:
            ValidationError: a bad iteration.
            TransportError: the store is unreachable (nothing was discarded).
        """
        kept = int64_field(iteration, "iteration")
        self._writer.flush()
        removed = self.store.rewind_points(self.ref.project_id, self.ref.experiment_id, kept)
        self._iteration = kept
        self._stored.rewound(kept)
        return removed

    # --- ending --------------------------------------------------------------------------------
    def end(
        self, status: Status | str = Status.DONE, *, timeout: float = CLOSE_TIMEOUT_SECONDS
    ) -> None:
        """Flush everything (waiting at most ``timeout`` seconds) and record the final status.

        ``done`` becomes ``stopped`` when a stop had been requested. Calling it again does
        nothing.
        """
        with self._lock:
            if self._ended:
                return
            self._ended = True
        final = Status(status)
        if final is Status.DONE and self._stop_requested:
            final = Status.STOPPED
        self._watcher.close()
        if self._system is not None:
            self._system.close()
        if self._console is not None:
            self._console.stop()
        self._uploads.close(timeout)
        self._writer.close(timeout)
        record_final_status(self._writer, final)
        if self._started_offline:
            writers = [self._writer.client_id, self._uploads.client_id]
            end_offline(self._writer.spool, self._spec, self._writer.address.ref, writers)
        self.status = final
        self._detach()
        if self._owns_store:
            self.store.close()
        if self._writer.error is not None and self.settings.strict:
            raise self._writer.error

    def _detach(self) -> None:
        atexit.unregister(self._at_exit)
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_excepthook

    def record_failure(self, exc: BaseException) -> None:
        """Put an exception's traceback into the logs (stream ``traceback``, level ERROR)."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        now = time.time()
        for line in text.rstrip("\n").split("\n"):
            self._writer.add_line(LogLine(now, "traceback", "ERROR", line))

    def __enter__(self) -> Experiment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            self.end(Status.DONE)
            return False
        if isinstance(exc, (ExperimentStopped, KeyboardInterrupt)):
            self.end(Status.STOPPED)
            return isinstance(exc, ExperimentStopped)  # a requested stop ends the block cleanly
        self.record_failure(exc)
        self.end(Status.FAILED)
        return False

    # --- background events -----------------------------------------------------------------------
    def _stop_seen(self) -> None:
        self._stop_requested = True
        if self._on_stop is not None:
            try:
                self._on_stop()
            except Exception as exc:
                warnings.warn(
                    f"mltrail: on_stop callback failed: {exc!r}", RuntimeWarning, stacklevel=1
                )

    def _excepthook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if not self._ended:
            stopped = isinstance(exc, (ExperimentStopped, KeyboardInterrupt))
            if not stopped:
                self.record_failure(exc)
            with contextlib.suppress(Exception):
                self.end(Status.STOPPED if stopped else Status.FAILED)
        self._previous_excepthook(exc_type, exc, tb)

    def _at_exit(self) -> None:
        self.end(Status.DONE)

    def _warn_after_end(self) -> None:
        if not self._warned_after_end:
            self._warned_after_end = True
            warnings.warn(
                f"experiment {self.project_id}/{self.experiment_id} has ended: this and later "
                "log/log_weights calls are not recorded",
                RuntimeWarning,
                stacklevel=3,
            )

    def _store_call(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except Exception as exc:
            if self.settings.strict or not is_transient(exc):
                raise
            warnings.warn(
                f"mltrail: store unreachable, change not recorded: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
