"""What the integrations share: opening the experiment, sorting metric names into phases."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from mltrail.core.types import Status
from mltrail.sdk.experiment import Experiment, start

# name prefixes the frameworks use for evaluation metrics, and the phase they mean
PHASE_PREFIXES = (
    ("val_", "validation"),
    ("val/", "validation"),
    ("valid_", "validation"),
    ("validation_", "validation"),
    ("validation/", "validation"),
    ("eval_", "validation"),
    ("eval/", "validation"),
    ("test_", "test"),
    ("test/", "test"),
    ("train_", "train"),
    ("train/", "train"),
)


def split_phase(name: str) -> tuple[str, str]:
    """``"val_loss"`` -> ``("validation", "loss")``; names without a known prefix are train."""
    for prefix, phase in PHASE_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return phase, name[len(prefix) :]
    return "train", name


def numeric_metrics(values: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, float]:
    """The entries that are numbers (or 0-d tensors), as floats; the rest is left out."""
    result: dict[str, float] = {}
    for key, value in values.items():
        if key in skip or isinstance(value, (bool, str)):
            continue
        if not isinstance(value, numbers.Real) and hasattr(value, "item"):
            try:
                value = value.item()
            except (ValueError, RuntimeError):
                continue
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            result[str(key)] = float(value)
    return result


def by_phase(values: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Group metric names by the phase their prefix says."""
    grouped: dict[str, dict[str, float]] = {}
    for name, value in values.items():
        phase, key = split_phase(name)
        grouped.setdefault(phase, {})[key] = value
    return grouped


class ExperimentHandle:
    """The experiment an integration writes to: given, or started on first use and owned.

    Args:
        experiment: an already started experiment (the caller ends it).
        start_kwargs: arguments for :func:`mltrail.start` when none is given.
        on_stop: what to do when a stop is requested (set the framework's stop flag).
    """

    def __init__(
        self,
        experiment: Experiment | None,
        start_kwargs: dict[str, Any],
        on_stop: Callable[[], None],
    ) -> None:
        self._experiment = experiment
        self._owned = experiment is None
        self._start_kwargs = start_kwargs
        self._on_stop = on_stop
        self.stop_requested = False

    @property
    def experiment(self) -> Experiment:
        if self._experiment is None:
            self._experiment = start(on_stop=self._stop, **self._start_kwargs)
        return self._experiment

    @property
    def started(self) -> bool:
        return self._experiment is not None

    def _stop(self) -> None:
        self.stop_requested = True
        self._on_stop()

    def end(self, status: Status = Status.DONE) -> None:
        """End the experiment if this handle started it."""
        if self._owned and self._experiment is not None:
            self._experiment.end(status)


def epoch_index(epoch: float | int | None) -> int | None:
    """A fractional epoch count (Transformers: 1.0 = first epoch done) as a 0-based index.

    ``0.25`` and ``1.0`` fall in epoch 0, ``1.5`` in epoch 1.
    """
    if epoch is None or not math.isfinite(float(epoch)):
        return None
    return max(math.ceil(float(epoch)) - 1, 0)
