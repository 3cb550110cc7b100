"""The Lightning logger against real Lightning and torch (skipped when not installed)."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")
lightning = pytest.importorskip("lightning")

from mltrail.config import Settings  # noqa: E402
from mltrail.core.types import Status  # noqa: E402
from mltrail.core.weights import weights_hash  # noqa: E402
from mltrail.integrations.lightning import MltrailLogger  # noqa: E402
from support.tiny_models import TinyRegressor, loader, quiet_trainer  # noqa: E402


def test_lightning_fit_records_steps_epochs_and_weights(tmp_path):
    torch.manual_seed(0)
    settings = Settings.from_env().with_(strict=True, capture_console=False)
    logger = MltrailLogger("lightning", "tiny", settings=settings)
    model = TinyRegressor()
    trainer = quiet_trainer(tmp_path, 2, logger=logger, callbacks=[logger.weights_callback()])
    trainer.fit(model, loader(0), loader(1))
    exp = logger.experiment
    final_hash = weights_hash(model)
    logger.end()

    from mltrail.store import open_store

    with open_store(settings) as store:
        p, e = exp.project_id, exp.experiment_id
        record = store.get_experiment(p, e)
        assert record.status is Status.DONE
        assert record.hyperparameters["lr"] == 0.05
        train = store.read_series(p, e, "loss", "train")
        assert train.total == 8  # 4 steps x 2 epochs, one point per step
        assert train.iterations.tolist() == list(range(8))
        assert train.epochs.tolist() == [0] * 4 + [1] * 4
        val = store.read_series(p, e, "loss", "validation")
        assert val.total == 2 and val.epochs.tolist() == [0, 1]
        links = store.list_weights_links(p, e)
        assert [(w.iteration, w.epoch) for w in links] == [(4, 0), (8, 1)]
        assert links[-1].weights_hash == final_hash


class Exploding(TinyRegressor):
    def training_step(self, batch, batch_idx):
        if self.global_step == 2:
            raise RuntimeError("loss went NaN")
        return super().training_step(batch, batch_idx)


def _trainer(logger, tmp_path, epochs):
    return quiet_trainer(tmp_path, epochs, logger=logger, callbacks=[logger.weights_callback()])


def test_a_failing_fit_ends_the_experiment_failed(tmp_path):
    settings = Settings.from_env().with_(strict=True, capture_console=False)
    logger = MltrailLogger("lightning", "exploding", settings=settings)
    with pytest.raises(RuntimeError, match="loss went NaN"):
        _trainer(logger, tmp_path, 2).fit(Exploding(), loader(0))
    assert logger.experiment.status is Status.FAILED


def test_a_stop_request_sets_should_stop(tmp_path):
    settings = Settings.from_env().with_(strict=True, capture_console=False)
    logger = MltrailLogger("lightning", "stoppable", settings=settings, stop_poll_seconds=0.02)

    class AskToStop(lightning.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 0:
                exp = logger.experiment
                exp.store.request_stop(exp.project_id, exp.experiment_id)
                time.sleep(0.5)  # the watcher polls every 20 ms

    trainer = _trainer(logger, tmp_path, 50)
    trainer.callbacks.append(AskToStop())
    trainer.fit(TinyRegressor(), loader(0))
    assert trainer.current_epoch < 50
    logger.end()
    assert logger.experiment.status is Status.STOPPED


def test_checkpoints_are_stored_and_download_by_weights_hash(tmp_path):
    """log_checkpoints stores ModelCheckpoint's last/best files; `mltrail models download
    --weights-hash` returns the file torch.load(weights_only=True) loads into the same weights."""
    import os
    import subprocess
    import sys

    torch.manual_seed(0)
    settings = Settings.from_env()  # the user's defaults: console capture, background writer
    logger = MltrailLogger("lightning", "checkpointed", settings=settings, log_checkpoints=True)
    checkpoints = lightning.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "ckpt", monitor="val_loss", save_last=True
    )
    trainer = lightning.Trainer(
        max_epochs=2,
        logger=logger,
        callbacks=[logger.weights_callback(), checkpoints],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    model = TinyRegressor()
    trainer.fit(model, loader(0), loader(1))
    final_hash = weights_hash(model)
    exp = logger.experiment
    logger.end()

    env = {**os.environ, **settings.to_env()}
    found = subprocess.run(
        [sys.executable, "-m", "mltrail", "models", "find", "-w", final_hash],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "checkpoints/last.ckpt" in found.stdout
    dest = tmp_path / "downloaded.ckpt"
    done = subprocess.run(
        [sys.executable, "-m", "mltrail", "models", "download", "-w", final_hash, "-d", str(dest)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"experiment {exp.experiment_id}" in done.stdout and "epoch 1" in done.stdout
    loaded = torch.load(dest, weights_only=True)
    fresh = TinyRegressor()
    fresh.load_state_dict(loaded["state_dict"])
    assert weights_hash(fresh) == final_hash
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor)
