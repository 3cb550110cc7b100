"""The Transformers callback against a real ``Trainer`` on a tiny local model (no download)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # Trainer needs it

from mltrail.config import Settings  # noqa: E402
from mltrail.core.types import Status  # noqa: E402
from mltrail.core.weights import weights_hash  # noqa: E402
from mltrail.integrations._common import epoch_index  # noqa: E402
from mltrail.integrations.transformers import MltrailCallback  # noqa: E402
from mltrail.store import open_store  # noqa: E402
from support.tiny_models import Pairs, tiny_bert, training_args  # noqa: E402


def test_trainer_run_records_steps_evals_hyperparameters_and_weights(tmp_path):
    torch.manual_seed(0)
    model = tiny_bert()
    args = training_args(tmp_path)
    settings = Settings.from_env().with_(strict=True, capture_console=False)
    callback = MltrailCallback("hf", "bert-tiny", settings=settings)
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Pairs(32, 0),
        eval_dataset=Pairs(16, 1),
        callbacks=[callback],
    )
    trainer.train()
    exp = callback.experiment
    assert exp.status is Status.DONE

    with open_store(settings) as store:
        p, e = exp.project_id, exp.experiment_id
        record = store.get_experiment(p, e)
        assert record.hyperparameters["learning_rate"] == 1e-3
        assert record.hyperparameters["model"] == "BertForSequenceClassification"
        loss = store.read_series(p, e, "loss", "train")
        assert loss.iterations.tolist() == list(range(1, 9))  # 32 / 8 = 4 steps per epoch
        assert loss.epochs.tolist() == [0] * 4 + [1] * 4
        val = store.read_series(p, e, "loss", "validation")
        assert val.iterations.tolist() == [4, 8] and val.epochs.tolist() == [0, 1]
        keys = {s.key for s in store.list_series(p, e)}
        assert {"summary/train_runtime", "summary/train_loss", "grad_norm"} <= keys
        links = store.list_weights_links(p, e)
        assert [(w.iteration, w.epoch) for w in links] == [(4, 0), (8, 1)]
        assert links[-1].weights_hash == weights_hash(model)


def test_fractional_epochs_map_to_the_epoch_they_fall_in():
    assert [epoch_index(x) for x in (0.25, 1.0, 1.5, 2.0, None)] == [0, 0, 1, 1, None]


def test_log_checkpoints_stores_the_last_and_the_best_model(tmp_path):
    torch.manual_seed(1)
    model = tiny_bert()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        eval_strategy="epoch",
        save_strategy="epoch",
        metric_for_best_model="loss",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    settings = Settings.from_env()  # the user's defaults
    callback = MltrailCallback("hf", "checkpointed", settings=settings, log_checkpoints=True)
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Pairs(32, 0),
        eval_dataset=Pairs(16, 1),
        callbacks=[callback],
    )
    trainer.train()
    exp = callback.experiment
    with open_store(settings) as store:
        stored = {a.path: a for a in store.list_artifacts(exp.project_id, exp.experiment_id)}
        assert {"checkpoints/best.pt", "checkpoints/last.pt"} <= set(stored)
        last = stored["checkpoints/last.pt"]
        assert (last.iteration, last.epoch) == (8, 1)
        assert last.weights_hash == weights_hash(model)
        [link] = [w for w in store.find_weights_hash(last.weights_hash) if w.epoch == 1]
        assert link.checkpoint == "checkpoints/last.pt"
