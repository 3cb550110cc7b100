"""PyTorch Lightning: a logger that records into an mltrail experiment.

Example::

    from mltrail.integrations.lightning import MltrailLogger

    logger = MltrailLogger(project="mnist", display_name="resnet-lr3e-4")
    trainer = lightning.Trainer(logger=logger, callbacks=[logger.weights_callback()])
    trainer.fit(model, data)
    logger.end()  # or let the process exit

Metrics named ``val_*`` / ``val/*`` go to phase validation, ``test_*`` to test, the rest to
train, at Lightning's step as iteration and the current epoch. The weights callback links the
module's weights hash at every training epoch end. A stop request sets ``trainer.should_stop``.

With ``log_checkpoints=True`` the last and best checkpoints ``ModelCheckpoint`` writes are stored
with the experiment (``exp.log_checkpoint``: copied once, uploaded in the background), each
linked to its weights hash, so ``mltrail models download --weights-hash H`` fetches them.
"""

from __future__ import annotations

import os
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from mltrail.core.types import Status
from mltrail.integrations._common import ExperimentHandle, by_phase, numeric_metrics
from mltrail.sdk.experiment import Experiment


class MltrailLogger(Logger):
    """A Lightning ``Logger`` writing to an mltrail experiment.

    Args:
        project: project id or display name (created if new).
        display_name: the experiment's name.
        experiment: an already started experiment to write to instead (you end it).
        log_checkpoints: store the last and best checkpoint files ``ModelCheckpoint`` saves.
        **start_kwargs: more arguments for :func:`mltrail.start` (``tags``, ``settings`` ...).
    """

    def __init__(
        self,
        project: int | str | None = None,
        display_name: str | None = None,
        *,
        experiment: Experiment | None = None,
        log_checkpoints: bool = False,
        **start_kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs = {"project": project, "display_name": display_name, **start_kwargs}
        self._handle = ExperimentHandle(experiment, kwargs, self._request_stop)
        self._trainer: Trainer | None = None
        self._epoch: int | None = None
        self._log_checkpoints = log_checkpoints
        self._logged_files: dict[str, float] = {}  # checkpoint path -> mtime already stored

    @property
    def name(self) -> str:
        return "mltrail"

    @property
    def version(self) -> int | str:
        exp = self.experiment
        return f"{exp.project_id}/{exp.experiment_id}"

    @property
    @rank_zero_experiment
    def experiment(self) -> Experiment:
        """The mltrail experiment (started on first use)."""
        return self._handle.experiment

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        self.experiment.set_hyperparams(_flatten(values))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = numeric_metrics(metrics)
        epoch = values.pop("epoch", None)
        if epoch is not None:
            self._epoch = int(epoch)
        for phase, group in by_phase(values).items():
            self.experiment.log(group, iteration=step, epoch=self._epoch, phase=phase)

    @rank_zero_only
    def log_weights(self, module: LightningModule, step: int, epoch: int) -> str:
        """Link the module's weights hash to (step, epoch)."""
        return self.experiment.log_weights(module, iteration=step, epoch=epoch)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Lightning calls this after ``ModelCheckpoint`` saved: store its last and best files
        (when ``log_checkpoints``), each once per version written."""
        if not self._log_checkpoints:
            return
        paths = (
            getattr(checkpoint_callback, "last_model_path", ""),
            getattr(checkpoint_callback, "best_model_path", ""),
        )
        trainer = self._trainer
        step = trainer.global_step if trainer is not None else None
        epoch = trainer.current_epoch if trainer is not None else self._epoch
        for path in dict.fromkeys(p for p in paths if p and os.path.isfile(p)):
            mtime = os.path.getmtime(path)
            if self._logged_files.get(path) == mtime:
                continue
            self._logged_files[path] = mtime
            name = f"checkpoints/{os.path.basename(path)}"
            self.experiment.log_checkpoint(path, iteration=step, epoch=epoch, name=name)

    def weights_callback(self) -> Callback:
        """A callback linking the weights hash at each training epoch end; pass it to the Trainer."""
        return MltrailWeightsCallback(self)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Flush; a failed run ends the experiment as failed (a successful one ends at exit)."""
        if not self._handle.started:
            return
        if status == "failed":
            self._handle.end(Status.FAILED)
        else:
            self.experiment.flush()

    @rank_zero_only
    def end(self, status: Status | str = Status.DONE) -> None:
        """End the experiment this logger started."""
        self._handle.end(Status(status))

    def _request_stop(self) -> None:
        if self._trainer is not None:
            self._trainer.should_stop = True


class MltrailWeightsCallback(Callback):
    """Links the weights hash to the experiment at each training epoch end."""

    def __init__(self, logger: MltrailLogger) -> None:
        self._logger = logger

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._logger._trainer = trainer

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._logger.log_weights(pl_module, trainer.global_step, trainer.current_epoch)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested hyperparameter dicts as ``a.b`` keys, so they show as columns."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
