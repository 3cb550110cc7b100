"""Hugging Face Transformers: a ``TrainerCallback`` that records into an mltrail experiment.

Example::

    from mltrail.integrations.transformers import MltrailCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                      callbacks=[MltrailCallback(project="glue", display_name="bert-tiny")])
    trainer.train()

``on_log`` entries become points at ``state.global_step``: ``eval_*`` in phase validation,
``test_*`` in test, the rest in train (``epoch`` is the epoch, not a metric); the final summary entry
(``train_runtime``, ``train_loss`` ...) becomes ``summary/<name>`` points. The training
arguments become hyperparameters; the model's weights hash is linked at every epoch end. A stop
request sets ``control.should_training_stop``. An experiment the callback started ends with
training (failed when training raised).

With ``log_checkpoints=True`` the model's state_dict is stored as ``checkpoints/last.pt`` each
time the Trainer saves a checkpoint, and as ``checkpoints/best.pt`` when an evaluation improves
``args.metric_for_best_model`` (``exp.log_checkpoint``: saved once, uploaded in the background,
linked to its weights hash).
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from mltrail.core.types import Status
from mltrail.integrations._common import (
    ExperimentHandle,
    by_phase,
    epoch_index,
    numeric_metrics,
)
from mltrail.sdk.experiment import Experiment

# Trainer's last log entry sums the run up; its values are kept as ``summary/<name>`` points
_SUMMARY_MARKER = "train_runtime"
_HYPERPARAMETERS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "weight_decay",
    "warmup_steps",
    "lr_scheduler_type",
    "optim",
    "seed",
)


class MltrailCallback(TrainerCallback):
    """Records a ``Trainer`` run into mltrail.

    Args:
        project: project id or display name (created if new).
        display_name: the experiment's name.
        experiment: an already started experiment to write to instead (you end it).
        log_checkpoints: store the last and best model (see the module docstring).
        **start_kwargs: more arguments for :func:`mltrail.start`.
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
        kwargs = {"project": project, "display_name": display_name, **start_kwargs}
        self._handle = ExperimentHandle(experiment, kwargs, lambda: None)
        self._log_checkpoints = log_checkpoints
        self._best: float | None = None

    @property
    def experiment(self) -> Experiment:
        return self._handle.experiment

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        params = {k: getattr(args, k, None) for k in _HYPERPARAMETERS}
        model = kwargs.get("model")
        if model is not None:
            params["model"] = type(model).__name__
        self.experiment.set_hyperparams({k: v for k, v in params.items() if v is not None})

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        values = numeric_metrics(logs)
        epoch = epoch_index(values.pop("epoch", state.epoch))
        if _SUMMARY_MARKER in values:
            summary = {f"summary/{k}": v for k, v in values.items()}
            self.experiment.log(summary, iteration=state.global_step, epoch=epoch)
            return
        for phase, group in by_phase(values).items():
            self.experiment.log(group, iteration=state.global_step, epoch=epoch, phase=phase)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model = kwargs.get("model")
        if state.is_world_process_zero and model is not None:
            epoch = epoch_index(state.epoch)
            self.experiment.log_weights(model, iteration=state.global_step, epoch=epoch)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model = kwargs.get("model")
        if self._log_checkpoints and state.is_world_process_zero and model is not None:
            self._store(model, state, "last")

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        model, key = kwargs.get("model"), args.metric_for_best_model
        if not (self._log_checkpoints and state.is_world_process_zero and model and key):
            return
        values = numeric_metrics(metrics or {})
        value = values.get(key if key.startswith("eval_") else f"eval_{key}")
        if value is None:
            return
        sign = 1.0 if args.greater_is_better else -1.0
        if self._best is None or sign * value > sign * self._best:
            self._best = value
            self._store(model, state, "best")

    def _store(self, model: Any, state: TrainerState, kind: str) -> None:
        epoch = epoch_index(state.epoch)
        name = f"checkpoints/{kind}.pt"
        self.experiment.log_checkpoint(model, iteration=state.global_step, epoch=epoch, name=name)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._handle.stop_requested:
            control.should_training_stop = True

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero:
            self._handle.end(Status.STOPPED if self._handle.stop_requested else Status.DONE)
