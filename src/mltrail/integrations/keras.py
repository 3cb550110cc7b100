"""Keras 3: a callback that records into an mltrail experiment.

Example::

    from mltrail.integrations.keras import MltrailCallback

    model.fit(x, y, epochs=5, validation_split=0.2,
              callbacks=[MltrailCallback(project="mnist", display_name="cnn")])

Per batch: the running train metrics at the global step. Per epoch: the epoch's train metrics as
``epoch/<name>`` (phase train) and ``val_<name>`` as ``<name>`` in phase validation, then the
weights hash of ``model.get_weights()``. ``evaluate`` results go to phase test. A stop request
sets ``model.stop_training``. An experiment the callback started ends with ``fit``.
"""

from __future__ import annotations

from typing import Any

import keras

from mltrail.core.types import Status
from mltrail.integrations._common import ExperimentHandle, numeric_metrics, split_phase
from mltrail.sdk.experiment import Experiment


class MltrailCallback(keras.callbacks.Callback):
    """Records a Keras ``fit`` (and ``evaluate``) into mltrail.

    Args:
        project: project id or display name (created if new).
        display_name: the experiment's name.
        experiment: an already started experiment to write to instead (you end it).
        log_every_n_steps: record batch metrics every n steps (1: every step).
        **start_kwargs: more arguments for :func:`mltrail.start`.
    """

    def __init__(
        self,
        project: int | str | None = None,
        display_name: str | None = None,
        *,
        experiment: Experiment | None = None,
        log_every_n_steps: int = 1,
        **start_kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs = {"project": project, "display_name": display_name, **start_kwargs}
        self._handle = ExperimentHandle(experiment, kwargs, self._request_stop)
        self._every = max(int(log_every_n_steps), 1)
        self._step = -1
        self._epoch = 0
        self._fitting = False  # fit's own validation runs the test hooks too

    @property
    def experiment(self) -> Experiment:
        return self._handle.experiment

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._fitting = True
        params: dict[str, int | float | str | None] = {
            k: v for k, v in (self.params or {}).items() if isinstance(v, (int, float, str))
        }
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            params["optimizer"] = type(optimizer).__name__
            rate = getattr(optimizer, "learning_rate", None)
            if rate is not None:
                params["learning_rate"] = _float_or_none(rate)
        self.experiment.set_hyperparams(params)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = int(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._step += 1
        if self._step % self._every == 0 and logs:
            self.experiment.log(numeric_metrics(logs), iteration=self._step, epoch=self._epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        train: dict[str, float] = {}
        validation: dict[str, float] = {}
        for name, value in numeric_metrics(logs or {}).items():
            phase, key = split_phase(name)
            if phase == "validation":
                validation[key] = value
            else:
                train[f"epoch/{name}"] = value
        step = max(self._step, 0)
        exp = self.experiment
        if train:
            exp.log(train, iteration=step, epoch=int(epoch))
        if validation:
            exp.log(validation, iteration=step, epoch=int(epoch), phase="validation")
        exp.log_weights(self.model, iteration=step, epoch=int(epoch))

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        values = numeric_metrics(logs or {})
        if values and not self._fitting:
            self.experiment.log(values, iteration=max(self._step, 0), phase="test")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._fitting = False
        self._handle.end(Status.DONE)

    def _request_stop(self) -> None:
        if self.model is not None:
            self.model.stop_training = True


def _float_or_none(value: Any) -> float | None:
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return None
