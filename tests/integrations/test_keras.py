"""The Keras callback against real Keras 3 on the torch backend (skipped when absent)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 without TensorFlow
keras = pytest.importorskip("keras")

from mltrail.checkpoints import weights_hash_from_file  # noqa: E402
from mltrail.config import Settings  # noqa: E402
from mltrail.core.types import Status  # noqa: E402
from mltrail.core.weights import weights_hash  # noqa: E402
from mltrail.integrations.keras import MltrailCallback  # noqa: E402
from mltrail.store import open_store  # noqa: E402


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model


def test_keras_fit_records_batches_epochs_weights_and_evaluate(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    settings = Settings.from_env().with_(strict=True, capture_console=False)
    callback = MltrailCallback("keras", "dense", settings=settings)
    model = _model()
    model.fit(x, y, epochs=2, batch_size=20, validation_split=0.25, callbacks=[callback], verbose=0)
    with pytest.warns(RuntimeWarning, match="has ended"):
        model.evaluate(x, y, callbacks=[callback], verbose=0)
    exp = callback.experiment
    assert exp.status is Status.DONE  # fit's end ended the experiment it started

    with open_store(settings) as store:
        p, e = exp.project_id, exp.experiment_id
        record = store.get_experiment(p, e)
        assert record.status is Status.DONE and record.hyperparameters["epochs"] == 2
        loss = store.read_series(p, e, "loss", "train")
        assert loss.iterations.tolist() == list(range(6))  # 60 train rows / 20, two epochs
        assert loss.epochs.tolist() == [0, 0, 0, 1, 1, 1]
        assert store.read_series(p, e, "epoch/loss", "train").total == 2
        val = store.read_series(p, e, "accuracy", "validation")
        assert val.epochs.tolist() == [0, 1]
        links = store.list_weights_links(p, e)
        assert [(w.iteration, w.epoch) for w in links] == [(2, 0), (5, 1)]
        assert links[-1].weights_hash == weights_hash(model)
        # evaluate after the end is not recorded into the ended experiment
        assert not [s for s in store.list_series(p, e) if s.phase == "test"]

    path = tmp_path / "model.keras"
    model.save(path)
    assert weights_hash_from_file("keras", path) == links[-1].weights_hash


def test_keras_evaluate_goes_to_test_phase_of_a_given_experiment():
    from mltrail.sdk.experiment import start

    settings = Settings.from_env().with_(strict=True, capture_console=False)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    model = _model()
    with start("keras", settings=settings) as exp:
        callback = MltrailCallback(experiment=exp)
        model.fit(x, y, epochs=1, batch_size=20, callbacks=[callback], verbose=0)
        assert exp.status is Status.RUNNING  # not ours to end
        model.evaluate(x, y, callbacks=[callback], verbose=0)
    with open_store(settings) as store:
        test = {
            (s.key, s.count)
            for s in store.list_series(exp.project_id, exp.experiment_id)
            if s.phase == "test"
        }
    assert test == {("loss", 1), ("accuracy", 1)}


def test_a_stop_request_ends_fit_early_and_the_run_is_stopped():
    settings = Settings.from_env().with_(strict=True, capture_console=False)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    callback = MltrailCallback("keras", settings=settings, stop_poll_seconds=0.02)

    class AskToStop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                exp = callback.experiment
                exp.store.request_stop(exp.project_id, exp.experiment_id)
                time.sleep(0.5)  # the watcher polls every 20 ms

    history = _model().fit(
        x, y, epochs=50, batch_size=20, callbacks=[AskToStop(), callback], verbose=0
    )
    assert len(history.epoch) < 50
    assert callback.experiment.status is Status.STOPPED


def test_log_checkpoints_stores_the_best_and_the_last_model(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    settings = Settings.from_env()  # the user's defaults
    callback = MltrailCallback("keras", "checkpointed", settings=settings, log_checkpoints=True)
    model = _model()
    model.fit(x, y, epochs=2, batch_size=20, validation_split=0.25, callbacks=[callback], verbose=0)
    exp = callback.experiment
    with open_store(settings) as store:
        stored = {a.path: a for a in store.list_artifacts(exp.project_id, exp.experiment_id)}
        assert {"checkpoints/best.pt", "checkpoints/last.pt"} <= set(stored)
        last = stored["checkpoints/last.pt"]
        assert last.weights_hash == weights_hash(model) and last.epoch == 1
        with store.open_artifact(exp.project_id, exp.experiment_id, last.path) as reader:
            (tmp_path / "last.pt").write_bytes(b"".join(reader.chunks))
    assert weights_hash_from_file("pytorch", tmp_path / "last.pt") == weights_hash(model)
