"""Keras 3: a callback that records into an mltrail experiment.

Example::

    from mltrail.integrations.keras import MltrailCallback

    model.fit(x, y, epochs=5, validation_split=0.2,
              callbacks=[MltrailCallback(project="mnist", display_name="cnn")])

Per batch: the running train metrics at the global step. Per epoch: the epoch's train metrics as
``epoch/<name>`` (phase train) and ``val_<name>`` as ``<name>`` in phase validation, then the
weights hash of ``model.get_weights()``. ``evaluate`` results go to phase test. A stop request
sets ``model.stop_training``. An experiment the callback started ends with ``fit``.

With ``log_checkpoints=True`` the model is stored as ``checkpoints/best<suffix>`` whenever the
``monitor`` metric improves and as ``checkpoints/last<suffix>`` when ``fit`` ends
(``exp.log_checkpoint``: saved once, uploaded in the background, linked to its weights hash).
"""

from __future__ import annotations

from typing import Any

import keras

from mltrail.core.types import Status
from mltrail.integrations._common import ExperimentHandle, numeric_metrics, split_phase
from mltrail.sdk.checkpoint_files import model_suffix
from mltrail.sdk.experiment import Experiment


class MltrailCallback(keras.callbacks.Callback):
    """Records a Keras ``fit`` (and ``evaluate``) into mltrail.

    Args:
        project: project id or display name (created if new).
        display_name: the experiment's name.
        experiment: an already started experiment to write to instead (you end it).
        log_every_n_steps: record batch metrics every n steps (1: every step).
        log_checkpoints: store the best (by ``monitor``) and the last model.
        monitor: the epoch metric whose improvement makes a best checkpoint.
        mode: ``min`` or ``max``: which way ``monitor`` improves.
        **start_kwargs: more arguments for :func:`mltrail.start`.
    """

    def __init__(
        self,
        project: int | str | None = None,
        display_name: str | None = None,
        *,
        experiment: Experiment | None = None,
        log_every_n_steps: int = 1,
        log_checkpoints: bool = False,
        monitor: str = "val_loss",
        mode: str = "min",
        **start_kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs = {"project": project, "display_name": display_name, **start_kwargs}
        self._handle = ExperimentHandle(experiment, kwargs, self._request_stop)
        self._every = max(int(log_every_n_steps), 1)
        self._step = -1
        self._epoch = 0
        self._fitting = False  # fit's own validation runs the test hooks too
        self._log_checkpoints = log_checkpoints
        self._monitor = monitor
        self._sign = -1.0 if mode == "max" else 1.0
        self._best: float | None = None

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
        watched = numeric_metrics(logs or {}).get(self._monitor)
        if self._log_checkpoints and watched is not None and self._improved(watched):
            self._store_model("best", step, int(epoch))

    def _improved(self, value: float) -> bool:
        if self._best is not None and self._sign * value >= self._sign * self._best:
            return False
        self._best = value
        return True

    def _store_model(self, kind: str, step: int, epoch: int) -> None:
        name = f"checkpoints/{kind}{model_suffix(self.model)}"
        self.experiment.log_checkpoint(self.model, iteration=step, epoch=epoch, name=name)

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        values = numeric_metrics(logs or {})
        if values and not self._fitting:
            self.experiment.log(values, iteration=max(self._step, 0), phase="test")

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._fitting = False
        if self._log_checkpoints:
            self._store_model("last", max(self._step, 0), self._epoch)
        self._handle.end(Status.DONE)

    def _request_stop(self) -> None:
        if self.model is not None:
            self.model.stop_training = True


def _float_or_none(value: Any) -> float | None:
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return None
