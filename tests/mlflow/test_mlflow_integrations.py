"""What logs through MLflow without knowing mltrail: scikit-learn autologging, Lightning's
``MLFlowLogger`` and Transformers' ``MLflowCallback``, each against a real ``mltrail server``
(SQLite; the tracking calls themselves run on PostgreSQL too in test_mlflow_tracking.py), each
run listed by mltrail with its metrics."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from mlflow_user import MlflowUser, mlflow, user_session

from support.servers import ServerProcess, unique_name


@pytest.fixture
def user(shared_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowUser]:
    yield from user_session(shared_server, monkeypatch)


def the_run(user: MlflowUser, run_id: str) -> dict:
    project, number = (int(x) for x in run_id.split("-"))
    [listed] = [e for e in user.api.experiments.list(project) if e["experiment_id"] == number]
    return listed


def test_sklearn_autolog_logs_a_run_mltrail_lists(
    user: MlflowUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    # MLflow infers a logged model's pip requirements by loading it in a fresh interpreter
    # that imports MLflow and scikit-learn (a third of this test's wall time): a local step
    # that sends nothing to the server. Its defaults stand in; the model's files still go up.
    monkeypatch.setattr(
        mlflow.models,
        "infer_pip_requirements",
        lambda *_, fallback=None, **__: list(fallback or []),
    )
    mlflow.set_experiment(unique_name("autolog"))
    mlflow.sklearn.autolog()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(C=0.5, max_iter=200).fit(x, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    listed = the_run(user, run.info.run_id)
    assert listed["status"] == "done"
    assert listed["hyperparameters"]["C"] == "0.5"
    assert 0.5 <= listed["metrics"]["train/training_accuracy_score"] <= 1.0
    assert "estimator_name=LogisticRegression" in listed["tags"]
    # the model autologging logged is files of the run, and loads back through MLflow
    project, number = listed["project_id"], listed["experiment_id"]
    paths = {a["path"] for a in user.api.artifacts.list(project, number)}
    assert {"models/model/MLmodel", "models/model/requirements.txt"} <= paths
    model_uri = mlflow.last_logged_model().model_uri
    loaded = mlflow.sklearn.load_model(model_uri)
    assert loaded.predict(x).shape == (200,)


def test_lightning_mlflow_logger_logs_steps_and_epochs(user: MlflowUser, tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("lightning")
    from lightning.pytorch.loggers import MLFlowLogger

    from support.tiny_models import TinyRegressor, loader, quiet_trainer

    logger = MLFlowLogger(
        experiment_name=unique_name("lightning"), tracking_uri=user.server.url, run_name="tiny"
    )
    quiet_trainer(tmp_path, 3, logger=logger).fit(TinyRegressor(), loader(0), loader(1))
    listed = the_run(user, logger.run_id)
    assert listed["display_name"] == "tiny" and listed["status"] == "done"
    assert listed["hyperparameters"]["lr"] == "0.05"
    assert {"train/train_loss", "train/val_loss", "train/epoch"} <= set(listed["metrics"])
    steps = user.api.store.read_series(
        listed["project_id"], listed["experiment_id"], "train_loss", "train"
    )
    assert steps.iterations.tolist() == list(range(12))  # 4 batches x 3 epochs, every step


def test_transformers_mlflow_callback_logs_a_run(
    user: MlflowUser, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from support.tiny_models import Pairs, tiny_bert, training_args

    name = unique_name("hf")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)  # how the callback is told (its docs)
    args = training_args(tmp_path, report_to=["mlflow"], run_name="bert-tiny")
    trainer = transformers.Trainer(
        model=tiny_bert(),
        args=args,
        train_dataset=Pairs(32, 0),
        eval_dataset=Pairs(16, 1),
    )
    trainer.train()
    mlflow.end_run()
    project = user.client.get_experiment_by_name(name).experiment_id
    [listed] = user.api.experiments.list(int(project))
    assert listed["display_name"] == "bert-tiny" and listed["status"] == "done"
    assert listed["hyperparameters"]["learning_rate"] == "0.001"
    assert {"train/loss", "train/eval_loss"} <= set(listed["metrics"])
    loss = user.api.store.read_series(int(project), listed["experiment_id"], "loss", "train")
    assert loss.iterations.tolist() == list(range(1, 9))  # 4 steps x 2 epochs, logged each step
