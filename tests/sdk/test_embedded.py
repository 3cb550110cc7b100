"""A real numpy training loop recorded in embedded mode, then read back through as_api()."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

import mltrail
from mltrail.core.points import MAX_EPOCH
from mltrail.core.types import Status
from mltrail.sdk.experiment import start
from sdk.training import train_logistic


def test_training_loop_points_hashes_logs_and_status_round_trip(settings):
    logging.getLogger("trainer").warning("before the run: not captured")
    with start(
        "numpy-logreg", "lr-0.5", hyperparams={"lr": 0.5}, tags=["numpy"], settings=settings
    ) as exp:
        logged = train_logistic(exp)
        logging.getLogger("trainer").warning("lr looks fine")
    assert exp.status is Status.DONE

    api = mltrail.as_api()
    [row] = api.experiments.list(exp.project_id)
    assert row["status"] == "done"
    assert row["hyperparameters"] == {"lr": 0.5}
    assert row["tags"] == ["numpy"]
    assert row["environment"]["python"] and "numpy" in row["environment"]["versions"]

    train = api.experiments.series(exp.project_id, exp.experiment_id, "loss", "train")
    assert train["iterations"] == [i for i, _, _ in logged["train"]]
    assert train["epochs"] == [e for _, e, _ in logged["train"]]
    assert train["values"] == [v for _, _, v in logged["train"]]
    val = api.experiments.series(exp.project_id, exp.experiment_id, "accuracy", "validation")
    assert (
        list(zip(val["iterations"], val["epochs"], val["values"], strict=True))
        == logged["validation"]
    )

    links = api.experiments.get(exp.project_id, exp.experiment_id)["weights"]
    assert [(w["weights_hash"], w["iteration"], w["epoch"]) for w in links] == logged["hashes"]
    final_hash = logged["hashes"][-1][0]
    [found] = api.models.find(final_hash)
    assert (found["project"], found["experiment"], found["epoch"]) == (
        exp.project_id,
        exp.experiment_id,
        2,
    )

    messages = [
        (ln.stream, ln.level, ln.message)
        for ln in api.experiments.logs(
            exp.project_id, exp.experiment_id, follow=False, file=_Null()
        )
    ]
    assert ("stdout", "INFO", "epoch 0 accuracy " + f"{logged['validation'][0][2]:.4f}") in messages
    assert ("trainer", "WARNING", "lr looks fine") in messages
    assert not any("before the run" in m for _, _, m in messages)
    api.close()


def test_project_by_name_is_reused_and_by_id(settings, store):
    with start("shared", settings=settings) as first:
        pass
    with start("shared", settings=settings) as second:
        pass
    with start(first.project_id, "by-id", settings=settings) as third:
        pass
    assert first.project_id == second.project_id == third.project_id
    assert [first.experiment_id, second.experiment_id, third.experiment_id] == [1, 2, 3]
    assert store.get_experiment(third.project_id, 3).display_name == "by-id"


def test_nan_and_infinities_round_trip(settings, store):
    with start("nan", settings=settings) as exp:
        exp.log({"x": math.nan})
        exp.log({"x": math.inf})
        exp.log({"x": -math.inf})
        exp.log({"x": np.float32(1.5)})
        exp.log({"x": 7})
    series = store.read_series(exp.project_id, exp.experiment_id, "x", "train")
    values = series.values.tolist()
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 1.5, 7.0]
    assert series.iterations.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metrics": {"loss": "0.5"}}, "metrics.loss"),
        ({"metrics": {"loss": True}}, "metrics.loss"),
        ({"metrics": {"loss": None}}, "metrics.loss"),
        ({"metrics": {"loss": 10**400}}, "metrics.loss"),  # past float: was an OverflowError
        ({"metrics": {"loss": 1.0}, "phase": "training"}, "phase"),
        ({"metrics": {"loss": 1.0}, "iteration": -1}, "iteration"),
        ({"metrics": {"loss": 1.0}, "iteration": 1.5}, "iteration"),
        ({"metrics": {"loss": 1.0}, "epoch": -2}, "epoch"),
        ({"metrics": {"k" * 251: 1.0}}, "metrics." + "k" * 50),
        ({"metrics": {"": 1.0}}, "metrics."),
        ({"metrics": {3: 1.0}}, "metrics.3"),
        ({"metrics": [("loss", 1.0)]}, "metrics"),
    ],
)
def test_bad_log_input_is_a_value_error_naming_the_field(settings, store, kwargs, field):
    with start("bad", settings=settings) as exp:
        exp.log({"loss": 0.1})
        with pytest.raises(ValueError) as info:
            exp.log(**kwargs)
        assert info.value.field == field
        exp.log({"loss": 0.2})
    # the bad call stored nothing and did not move the iteration counter
    series = store.read_series(exp.project_id, exp.experiment_id, "loss", "train")
    assert series.iterations.tolist() == [0, 1]


def test_iteration_counts_up_and_other_phases_share_it(settings, store):
    with start("auto", settings=settings) as exp:
        exp.log({"loss": 1.0})
        exp.log({"loss": 0.9})
        exp.log({"acc": 0.5}, phase="validation")
        exp.log({"loss": 0.8}, iteration=10)
        exp.log({"loss": 0.7})
    p, e = exp.project_id, exp.experiment_id
    assert store.read_series(p, e, "loss", "train").iterations.tolist() == [0, 1, 10, 11]
    assert store.read_series(p, e, "acc", "validation").iterations.tolist() == [1]


def test_logging_after_end_warns_once_and_says_so(settings, store):
    exp = start("late", settings=settings)
    exp.log({"loss": 1.0})
    exp.end()
    with pytest.warns(RuntimeWarning, match="has ended") as record:
        exp.log({"loss": 2.0})
        exp.log({"loss": 3.0})
        exp.log_weights([np.ones(2)])
    assert len(record) == 1
    assert store.list_series(exp.project_id, exp.experiment_id)[0].count == 1


def test_exception_marks_failed_with_traceback_in_logs(settings, store):
    with pytest.raises(ZeroDivisionError), start("boom", settings=settings) as exp:
        exp.log({"loss": 1.0})
        _ = 1 / 0
    record = store.get_experiment(exp.project_id, exp.experiment_id)
    assert record.status is Status.FAILED and record.ended_at is not None
    lines = store.read_logs(exp.project_id, exp.experiment_id)
    tb = [ln.message for ln in lines if ln.stream == "traceback"]
    assert tb[0].startswith("Traceback") and tb[-1] == "ZeroDivisionError: division by zero"
    assert all(ln.level == "ERROR" for ln in lines if ln.stream == "traceback")


def test_set_hyperparams_merges(settings, store):
    with start("hp", hyperparams={"lr": 0.1}, settings=settings) as exp:
        exp.set_hyperparams({"batch": 32}, momentum=np.float64(0.9))
    record = store.get_experiment(exp.project_id, exp.experiment_id)
    assert record.hyperparameters == {"lr": 0.1, "batch": 32, "momentum": 0.9}


def test_agent_settings_attach_to_the_pre_created_experiment(settings, store):
    project = store.create_project("remote")
    queued = store.create_experiment(project.id, display_name="queued", status=Status.QUEUED)
    agent_settings = settings.with_(project=str(project.id), experiment=queued.experiment_id)
    with start("ignored-name", settings=agent_settings) as exp:
        exp.log({"loss": 0.5})
    assert (exp.project_id, exp.experiment_id) == (project.id, queued.experiment_id)
    record = store.get_experiment(project.id, queued.experiment_id)
    assert record.status is Status.DONE and record.display_name == "queued"
    assert store.find_project("ignored-name") is None
    assert store.list_series(project.id, queued.experiment_id)[0].count == 1


def test_start_without_project_names_the_field(settings):
    with pytest.raises(mltrail.ValidationError) as info:
        start(settings=settings)
    assert info.value.field == "project"


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def test_mltrail_project_alone_names_the_default_project(settings, store):
    with start(settings=settings.with_(project="from-env")) as exp:
        exp.log({"loss": 1.0})
    assert store.find_project("from-env").id == exp.project_id


def test_an_epoch_past_what_the_store_keeps_is_refused_when_logged(settings, store):
    """Epochs are stored in 32-bit columns: a larger one raises at ``log`` (not a batch of
    every series refused by the store later), and the largest kept is stored as logged."""
    with start("epochs", settings=settings) as exp:
        for epoch in (MAX_EPOCH + 1, 2**63 - 1):
            with pytest.raises(mltrail.ValidationError) as info:
                exp.log({"loss": 1.0}, epoch=epoch)
            assert info.value.field == "epoch"
        exp.log({"loss": 0.5}, epoch=MAX_EPOCH)
    series = store.list_series(exp.project_id, exp.experiment_id)
    assert [(s.count, s.last_epoch) for s in series if s.key == "loss"] == [(1, MAX_EPOCH)]
