"""The Store contract, written against the Store interface only (fixture ``store``).

Runs on SqlStore over SQLite and PostgreSQL here; an HttpStore run can reuse it by
providing its own ``store`` fixture.
"""

from __future__ import annotations

import math
import struct
import threading
import time

import numpy as np
import pytest

from mltrail.core import validation
from mltrail.core.errors import ConflictError, NotFoundError, ValidationError
from mltrail.core.types import (
    ExperimentRef,
    LogBatch,
    LogLine,
    MetricBatch,
    Status,
)
from mltrail.store.base import Store
from support.factories import batch, chunk

HASH_A = "a" * 40
HASH_B = "b" * 40


@pytest.fixture
def project(store: Store):
    return store.create_project("vision", "image models")


@pytest.fixture
def exp(store: Store, project):
    return store.create_experiment(project.id, hyperparameters={"lr": 0.1})


# --- projects and experiments ----------------------------------------------------------------
def test_projects_are_listed_with_counts_and_found_by_name(store: Store, project) -> None:
    other = store.create_project("nlp")
    store.create_experiment(project.id)
    store.create_experiment(project.id)
    listed = {p.id: p for p in store.list_projects()}
    assert listed[project.id].experiment_count == 2
    assert listed[project.id].last_activity is not None
    assert listed[other.id].experiment_count == 0
    assert store.get_project(project.id).description == "image models"
    assert store.find_project("nlp").id == other.id
    assert store.find_project("missing") is None


def test_project_name_is_validated(store: Store) -> None:
    with pytest.raises(ValidationError) as err:
        store.create_project("x" * 141)
    assert err.value.field == "display_name"


def test_experiments_are_numbered_per_project(store: Store, project) -> None:
    other = store.create_project("other")
    numbers = [store.create_experiment(project.id).experiment_id for _ in range(3)]
    assert numbers == [1, 2, 3]
    assert store.create_experiment(other.id).experiment_id == 1
    assert store.create_experiment(project.id, display_name="run").experiment_id == 4
    assert store.get_experiment(project.id, 1).display_name == "experiment-1"
    assert store.latest_experiment(project.id).display_name == "run"


def test_concurrent_creation_gives_unique_gapless_numbers(store: Store, project) -> None:
    numbers: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            for _ in range(5):
                numbers.append(store.create_experiment(project.id).experiment_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(numbers) == list(range(1, 41))


def test_status_transitions_set_timestamps(store: Store, project) -> None:
    queued = store.create_experiment(project.id, status=Status.QUEUED)
    assert queued.started_at is None and queued.ended_at is None
    running = store.update_experiment(project.id, queued.experiment_id, status=Status.RUNNING)
    assert running.status is Status.RUNNING and running.started_at is not None
    done = store.update_experiment(project.id, queued.experiment_id, status=Status.DONE)
    assert done.ended_at is not None and done.ended_at >= done.started_at
    assert done.started_at == running.started_at


def test_update_merges_json_fields(store: Store, project) -> None:
    e = store.create_experiment(project.id, hyperparameters={"lr": 0.1, "bs": 32}, tags=["a"])
    e = store.update_experiment(
        project.id, e.experiment_id, hyperparameters={"lr": 0.2}, tags=["b", "c"]
    )
    assert e.hyperparameters == {"lr": 0.2, "bs": 32}
    assert e.tags == ("b", "c")


def test_kept_hyperparameters_only_add_keys(store: Store, project) -> None:
    e = store.create_experiment(project.id, hyperparameters={"lr": "0.1"}, tags=["a"])
    ref = (project.id, e.experiment_id)
    e = store.update_experiment(*ref, hyperparameters={"lr": "0.1", "bs": "32"},
                                keep_hyperparameters=True)  # fmt: skip
    assert e.hyperparameters == {"lr": "0.1", "bs": "32"}
    with pytest.raises(ValidationError) as info:
        store.update_experiment(*ref, hyperparameters={"wd": "0", "lr": "0.2"}, add_tags=["b"],
                                keep_hyperparameters=True)  # fmt: skip
    assert info.value.field == "hyperparameters" and "'lr'" in info.value.message
    after = store.get_experiment(*ref)  # the whole update refused: no key, no tag added
    assert after.hyperparameters == {"lr": "0.1", "bs": "32"} and after.tags == ("a",)
    assert (
        store.update_experiment(*ref, hyperparameters={"lr": "0.2"}).hyperparameters["lr"] == "0.2"
    )


def test_kept_hyperparameters_take_a_repeated_nan(store: Store, project) -> None:
    """A NaN sent again is the value already kept (NaN != NaN must not refuse it), nested too."""
    nan = float("nan")
    first = {"wd": nan, "sched": {"warmup": nan, "steps": [1, nan]}}
    e = store.create_experiment(project.id, hyperparameters=first)
    ref = (project.id, e.experiment_id)
    again = {"wd": float("nan"), "sched": {"warmup": float("nan"), "steps": [1.0, float("nan")]}}
    e = store.update_experiment(*ref, hyperparameters={**again, "bs": 32},
                                keep_hyperparameters=True)  # fmt: skip
    assert math.isnan(e.hyperparameters["wd"]) and e.hyperparameters["bs"] == 32
    for changed in ({"wd": 0.1}, {"sched": {"warmup": nan, "steps": [1, 2]}}, {"bs": nan}):
        with pytest.raises(ValidationError) as info:
            store.update_experiment(*ref, hyperparameters=changed, keep_hyperparameters=True)
        assert info.value.field == "hyperparameters"


def test_hyperparameters_keep_non_finite_and_huge_values(store: Store, project) -> None:
    big = "x" * 10_000_000
    e = store.create_experiment(
        project.id, hyperparameters={"inf": math.inf, "nan": math.nan, "big": big, "n": 10**30}
    )
    got = store.get_experiment(project.id, e.experiment_id).hyperparameters
    assert got["inf"] == math.inf and math.isnan(got["nan"])
    assert got["big"] == big and got["n"] == 10**30


def test_request_stop(store: Store, project, exp) -> None:
    assert store.request_stop(project.id, exp.experiment_id).stop_requested
    store.update_experiment(project.id, exp.experiment_id, status=Status.STOPPED)
    with pytest.raises(ConflictError):
        store.request_stop(project.id, exp.experiment_id)


def test_unknown_project_and_experiment_name_the_field(store: Store, project) -> None:
    with pytest.raises(NotFoundError) as err:
        store.get_project(9999)
    assert err.value.field == "project"
    with pytest.raises(NotFoundError) as err:
        store.get_experiment(project.id, 42)
    assert err.value.field == "experiment"
    with pytest.raises(NotFoundError) as err:
        store.latest_experiment(project.id)
    assert err.value.field == "experiment"
    with pytest.raises(NotFoundError):
        store.append_points(project.id, 42, batch(1, chunk("loss", [0], [1.0])))


# --- metric points -----------------------------------------------------------------------------
def test_retried_batch_is_stored_once(store: Store, project, exp) -> None:
    b = batch(1, chunk("loss", range(100), np.linspace(1, 0, 100)))
    assert store.append_points(project.id, exp.experiment_id, b) == 100
    assert store.append_points(project.id, exp.experiment_id, b) == 0
    other_client = MetricBatch("client-2", 1, b.chunks)
    assert store.append_points(project.id, exp.experiment_id, other_client) == 100
    series = store.read_series(project.id, exp.experiment_id, "loss", "train")
    assert series.total == 200 and len(series.values) == 200


def test_concurrent_appends_to_one_experiment_all_land(store: Store, project, exp) -> None:
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for seq in range(5):
                start = seq * 100
                chunks = (
                    chunk("shared", range(start, start + 100), np.full(100, float(worker))),
                    chunk(f"own-{worker}", range(start, start + 100), np.arange(100.0)),
                )
                store.append_points(
                    project.id, exp.experiment_id, batch(seq, *chunks, client=f"w{worker}")
                )
                lines = (LogLine(time.time(), "stdout", "INFO", f"{worker}-{seq}"),)
                store.append_logs(project.id, exp.experiment_id, LogBatch(f"w{worker}", seq, lines))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    shared = store.read_series(project.id, exp.experiment_id, "shared", "train")
    assert shared.total == 2000 and len(shared.values) == 2000
    assert sorted(np.bincount(shared.values.astype(int)).tolist()) == [500] * 4
    summaries = {s.name: s.count for s in store.list_series(project.id, exp.experiment_id)}
    assert summaries == {"train/shared": 2000, **{f"train/own-{w}": 500 for w in range(4)}}
    assert [line.seq for line in store.read_logs(project.id, exp.experiment_id)] == list(
        range(1, 21)
    )


def test_non_finite_values_round_trip_bit_exact(store: Store, project, exp) -> None:
    odd_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF))[0]
    values = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308, odd_nan]
    store.append_points(project.id, exp.experiment_id, batch(1, chunk("odd", range(7), values)))
    got = store.read_series(project.id, exp.experiment_id, "odd", "train").values
    sent = np.asarray(values, dtype=np.float64)
    assert got.view(np.uint64).tolist() == sent.view(np.uint64).tolist()


def test_full_export_equals_what_was_sent(store: Store, project, exp) -> None:
    rng = np.random.default_rng(1)
    parts = []
    for seq in range(5):
        it = np.arange(seq * 1000, (seq + 1) * 1000)
        values = rng.normal(size=1000)
        epochs = it // 700
        parts.append((it, epochs, values))
        c = chunk("loss", it, values, epochs=epochs)
        store.append_points(project.id, exp.experiment_id, batch(seq, c))
    series = store.read_series(project.id, exp.experiment_id, "loss", "train")
    assert not series.downsampled and series.total == 5000
    assert np.array_equal(series.iterations, np.concatenate([p[0] for p in parts]))
    assert np.array_equal(series.epochs, np.concatenate([p[1] for p in parts]))
    assert np.array_equal(series.values, np.concatenate([p[2] for p in parts]))


def test_downsampling_keeps_first_last_min_and_max(store: Store, project, exp) -> None:
    rng = np.random.default_rng(7)
    n = 200_000
    values = rng.normal(size=n)
    values[123_457] = 50.0
    values[77_777] = -50.0
    values[5] = math.nan
    for seq, start in enumerate(range(0, n, 25_000)):
        part = slice(start, start + 25_000)
        c = chunk("acc", np.arange(n)[part], values[part], phase="validation")
        store.append_points(project.id, exp.experiment_id, batch(seq, c))
    for max_points in (2, 3, 10, 500, 2000):
        s = store.read_series(
            project.id, exp.experiment_id, "acc", "validation", max_points=max_points
        )
        assert s.downsampled and s.total == n
        assert 0 < len(s.values) <= max_points
        assert s.iterations[0] == 0 and s.iterations[-1] == n - 1
        assert np.all(np.diff(s.iterations) >= 0)
        if max_points >= 4:
            assert 50.0 in s.values.tolist() and -50.0 in s.values.tolist()
            assert 123_457 in s.iterations.tolist()


def test_iteration_range_is_read_at_the_resolution_of_the_range(store: Store, project, exp) -> None:
    """A zoomed chart's re-read: only the range's points, raw when they fit in max_points,
    else downsampled from them alone (min and max of the range kept)."""
    n = 300_000
    values = np.sin(np.arange(n) / 1000.0)
    values[150_321] = 9.0  # inside the zoom below
    values[10] = -9.0  # outside it
    for seq, start in enumerate(range(0, n, 50_000)):  # SDK-sized batches
        part = slice(start, start + 50_000)
        c = chunk("loss", np.arange(n)[part], values[part])
        store.append_points(project.id, exp.experiment_id, batch(seq, c))
    ref = (project.id, exp.experiment_id, "loss", "train")
    zoom = store.read_series(*ref, max_points=500, start=140_000, end=160_000)
    assert zoom.downsampled and zoom.total == n
    assert 0 < len(zoom.values) <= 500
    assert zoom.iterations.min() >= 140_000 and zoom.iterations.max() <= 160_000
    assert zoom.iterations[0] - 140_000 < 100 and 160_000 - zoom.iterations[-1] < 100
    assert 9.0 in zoom.values.tolist() and -9.0 not in zoom.values.tolist()
    whole = store.read_series(*ref, max_points=500)
    assert len(zoom.values) > 0.8 * 500  # a range is not a slice of the whole read's points
    assert np.count_nonzero((whole.iterations >= 140_000) & (whole.iterations <= 160_000)) < 60
    raw = store.read_series(*ref, max_points=500, start=150_000, end=150_399)
    assert not raw.downsampled
    assert raw.iterations.tolist() == list(range(150_000, 150_400))
    assert raw.values.tolist() == values[150_000:150_400].tolist()
    across = store.read_series(*ref, start=49_990, end=50_009)  # two batches, no max_points
    assert across.iterations.tolist() == list(range(49_990, 50_010))
    tail = store.read_series(*ref, max_points=100, start=n - 50)  # open end
    assert tail.iterations.tolist() == list(range(n - 50, n)) and not tail.downsampled
    assert len(store.read_series(*ref, start=n + 10, end=n + 20).values) == 0
    with pytest.raises(ValidationError) as err:
        store.read_series(*ref, start=10, end=5)
    assert err.value.field == "end"


def test_small_series_with_max_points_is_returned_raw(store: Store, project, exp) -> None:
    store.append_points(project.id, exp.experiment_id, batch(1, chunk("l", range(10), range(10))))
    s = store.read_series(project.id, exp.experiment_id, "l", "train", max_points=100)
    assert not s.downsampled and s.values.tolist() == list(map(float, range(10)))


def test_unknown_series_is_not_found(store: Store, project, exp) -> None:
    with pytest.raises(NotFoundError) as err:
        store.read_series(project.id, exp.experiment_id, "nope", "train")
    assert err.value.field == "key"


def test_bad_chunks_are_rejected_without_partial_write(store: Store, project, exp) -> None:
    good = chunk("loss", [0, 1], [1.0, 2.0])
    bad = chunk("loss", [0, 1], [1.0, 2.0], phase="bogus")
    with pytest.raises(ValidationError) as err:
        store.append_points(project.id, exp.experiment_id, batch(1, good, bad))
    assert err.value.field == "phase"
    assert store.list_series(project.id, exp.experiment_id) == []
    # the rejected batch did not burn its sequence number
    assert store.append_points(project.id, exp.experiment_id, batch(1, good)) == 2


def test_summaries_track_count_last_min_max(store: Store, project, exp) -> None:
    ref = (project.id, exp.experiment_id)
    store.append_points(
        *ref, batch(1, chunk("loss", [0, 1, 2], [3.0, math.nan, 1.0], epochs=[0, 0, 1]))
    )
    store.append_points(*ref, batch(2, chunk("loss", [3, 4], [7.0, 2.0], epochs=[1, 2])))
    store.append_points(*ref, batch(3, chunk("acc", [0], [math.nan], phase="test")))
    by_name = {s.name: s for s in store.list_series(*ref)}
    loss = by_name["train/loss"]
    assert (loss.count, loss.last, loss.min, loss.max) == (5, 2.0, 1.0, 7.0)
    assert (loss.last_iteration, loss.last_epoch) == (4, 2)
    assert by_name["test/acc"].count == 1 and math.isnan(by_name["test/acc"].min)
    metrics = store.get_experiment(*ref).metrics
    assert metrics["train/loss"] == 2.0 and math.isnan(metrics["test/acc"])


def test_list_experiments_pages_with_metrics_and_ex_metrics(store: Store, project) -> None:
    for i in range(7):
        e = store.create_experiment(project.id, hyperparameters={"i": i})
        store.append_points(project.id, e.experiment_id, batch(1, chunk("loss", [0, 1], [9.0, i])))
        store.put_external_metrics([e.ref], {"cost": i})
    page = store.list_experiments(project.id, offset=2, limit=3)
    assert page.total == 7 and page.offset == 2
    assert [e.experiment_id for e in page.items] == [3, 4, 5]
    assert page.items[0].metrics == {"train/loss": 2.0}
    assert page.items[0].ex_metrics == {"ex_cost": 2}
    assert page.items[0].hyperparameters == {"i": 2}


def test_list_experiments_keeps_values_exact(store: Store, project) -> None:
    """Pages with and without tagged floats, and with integers beyond 64 bits."""
    plain = store.create_experiment(project.id, hyperparameters={"n": 10**30, "lr": 0.1})
    odd = store.create_experiment(
        project.id, hyperparameters={"inf": math.inf, "nan": math.nan, "m": -(2**70)}
    )
    store.append_points(project.id, odd.experiment_id, batch(1, chunk("l", [0], [math.nan])))
    store.put_external_metrics([odd.ref], {"cost": -math.inf, "count": 2**64})
    first = store.list_experiments(project.id, limit=1).items[0]  # no non-finite value
    assert first.experiment_id == plain.experiment_id
    assert first.hyperparameters == {"n": 10**30, "lr": 0.1}
    assert type(first.hyperparameters["n"]) is int
    got = store.list_experiments(project.id).items[1]
    assert got.hyperparameters["inf"] == math.inf and math.isnan(got.hyperparameters["nan"])
    assert got.hyperparameters["m"] == -(2**70) and type(got.hyperparameters["m"]) is int
    assert math.isnan(got.metrics["train/l"])
    assert got.ex_metrics == {"ex_cost": -math.inf, "ex_count": 2**64}


# --- external metrics, weights, charts ---------------------------------------------------------
def test_ex_metrics_round_trip_with_their_types(store: Store, project, exp) -> None:
    metrics = {"ex_cost": 99, "ratio": 0.5, "ok": True, "note": "fine", "inf": math.inf}
    store.put_external_metrics([exp.ref], metrics)
    got = store.get_experiment(project.id, exp.experiment_id).ex_metrics
    assert got == {
        "ex_cost": 99,
        "ex_ratio": 0.5,
        "ex_ok": True,
        "ex_note": "fine",
        "ex_inf": math.inf,
    }
    assert type(got["ex_cost"]) is int and type(got["ex_ok"]) is bool
    store.put_external_metrics([exp.ref], {"ex_cost": "high"})
    assert store.get_experiment(project.id, exp.experiment_id).ex_metrics["ex_cost"] == "high"


def test_ex_metrics_are_all_or_nothing(store: Store, project, exp) -> None:
    missing = ExperimentRef(project.id, 99)
    with pytest.raises(NotFoundError):
        store.put_external_metrics([exp.ref, missing], {"cost": 1})
    assert store.get_experiment(project.id, exp.experiment_id).ex_metrics == {}


def test_weights_links_fan_out_to_every_experiment_and_epoch(store: Store, project) -> None:
    e1 = store.create_experiment(project.id)
    e2 = store.create_experiment(project.id)
    store.link_weights_hash(project.id, 1, HASH_A, iteration=100, epoch=1)
    store.link_weights_hash(project.id, 1, HASH_A, iteration=200, epoch=2)
    store.link_weights_hash(project.id, 2, HASH_A.upper(), iteration=50, epoch=None)
    store.link_weights_hash(project.id, 2, HASH_B, iteration=60, epoch=3)
    store.link_weights_hash(project.id, 2, HASH_B, iteration=60, epoch=3)  # idempotent
    assert len(store.find_weights_hash(HASH_A)) == 3
    assert len(store.list_weights_links(project.id, e2.experiment_id)) == 2
    assert store.put_iteration_metrics(HASH_A, {"acc": 0.9}) == 3
    assert store.put_iteration_metrics(HASH_A, {"acc": 0.95}) == 3  # replaces, not adds
    got1 = store.read_iteration_metrics(project.id, e1.experiment_id)
    assert [(m.key, m.iteration, m.epoch, m.value) for m in got1] == [
        ("ex_acc", 100, 1, 0.95),
        ("ex_acc", 200, 2, 0.95),
    ]
    got2 = store.read_iteration_metrics(project.id, e2.experiment_id)
    assert [(m.iteration, m.epoch, m.weights_hash) for m in got2] == [(50, None, HASH_A)]


def test_iteration_metrics_on_a_hash_of_many_epochs_overwrite_each_point_once(
    store: Store, project
) -> None:
    """A hash linked to 600 epochs of one run and 2 of another (the set-based write): every
    link gets the key once, a second write replaces it, other keys and hashes stay."""
    e1, e2 = store.create_experiment(project.id), store.create_experiment(project.id)
    for epoch in range(600):
        store.link_weights_hash(
            project.id, e1.experiment_id, HASH_A, iteration=epoch * 10, epoch=epoch
        )
    store.link_weights_hash(project.id, e2.experiment_id, HASH_A, iteration=None, epoch=None)
    store.link_weights_hash(project.id, e2.experiment_id, HASH_A, iteration=7, epoch=None)
    store.link_weights_hash(project.id, e2.experiment_id, HASH_B, iteration=7, epoch=None)
    store.put_iteration_metrics(HASH_B, {"acc": 0.1})
    assert store.put_iteration_metrics(HASH_A, {"acc": 0.5, "f1": 0.4}) == 602
    assert store.put_iteration_metrics(HASH_A, {"acc": 0.9}) == 602
    got1 = store.read_iteration_metrics(project.id, e1.experiment_id)
    assert len(got1) == 1200
    assert {(m.key, m.value) for m in got1} == {("ex_acc", 0.9), ("ex_f1", 0.4)}
    assert sorted(m.epoch for m in got1 if m.key == "ex_acc") == list(range(600))
    got2 = store.read_iteration_metrics(project.id, e2.experiment_id)
    assert sorted((m.key, m.iteration or -1, m.value, m.weights_hash) for m in got2) == [
        ("ex_acc", -1, 0.9, HASH_A),
        ("ex_acc", 7, 0.1, HASH_B),
        ("ex_acc", 7, 0.9, HASH_A),
        ("ex_f1", -1, 0.4, HASH_A),
        ("ex_f1", 7, 0.4, HASH_A),
    ]


def test_iteration_metrics_for_unknown_hash_is_an_error(store: Store, project, exp) -> None:
    with pytest.raises(NotFoundError) as err:
        store.put_iteration_metrics("c" * 40, {"acc": 1})
    assert err.value.field == "weights_hash"
    assert store.find_weights_hash("c" * 40) == []
    with pytest.raises(ValidationError):
        store.link_weights_hash(project.id, exp.experiment_id, "xyz", iteration=1, epoch=None)


def test_charts_are_replaced_by_name(store: Store, project, exp) -> None:
    first = validation.chart("Confusion", chart_x=[1, 2, 3], chart_y=[1.0, 2.0, math.nan])
    store.put_chart([exp.ref], first)
    second = validation.chart(
        " confusion ",
        chart_x='["a", "b"]',
        chart_y="[[1, 2], [3, 4]]",
        chart_y_name='["p", "r"]',
        chart_scope="validation",
    )
    store.put_chart([exp.ref], second)
    other = validation.chart("Other", chart_x=[0.5], chart_y=[1])
    store.put_chart([exp.ref], other)
    charts = store.list_charts(project.id, exp.experiment_id)
    assert [c.spec.name for c in charts] == ["Other", "confusion"]
    replaced = charts[1]
    assert replaced.chart_id == validation.chart_id("Confusion")
    assert replaced.spec.x == ("a", "b") and replaced.spec.y == ((1.0, 2.0), (3.0, 4.0))
    assert replaced.spec.y_names == ("p", "r") and replaced.spec.scope == "validation"


# --- logs ------------------------------------------------------------------------------------------
def test_logs_keep_order_and_replays_land_once(store: Store, project, exp) -> None:
    ref = (project.id, exp.experiment_id)
    now = time.time()
    lines = tuple(LogLine(now + i, "stdout", "INFO", f"line {i}") for i in range(5))
    assert store.append_logs(*ref, LogBatch("c", 1, lines)) == 5
    assert store.append_logs(*ref, LogBatch("c", 1, lines)) == 0
    more = (LogLine(now, "train", "warn", "careful"),)
    assert store.append_logs(*ref, LogBatch("c", 2, more)) == 1
    got = store.read_logs(*ref)
    assert [line.seq for line in got] == [1, 2, 3, 4, 5, 6]
    assert [line.message for line in got][:2] == ["line 0", "line 1"]
    assert got[-1].level == "WARNING" and got[-1].stream == "train"
    assert [line.seq for line in store.read_logs(*ref, after_seq=4, limit=1)] == [5]


def test_log_pages_are_the_lines_as_columns_from_any_line(store: Store, project, exp) -> None:
    ref = (project.id, exp.experiment_id)
    texts = ["a", "b\x00nul", "c \\ back", "\udcff byte", "e", "f", "g"]
    sizes = (1, 3, 2, 1)  # batches of several sizes: a page starts and ends anywhere
    start = 0
    for seq, size in enumerate(sizes):
        lines = tuple(
            LogLine(1.5 + i, "stdout", "INFO", texts[i]) for i in range(start, start + size)
        )
        store.append_logs(*ref, LogBatch("c", seq, lines))
        start += size
    for after in range(len(texts) + 1):
        for limit in (1, 2, 3, 10):
            page = store.read_log_page(*ref, after_seq=after, limit=limit)
            want = texts[after : after + limit]
            assert list(page.messages) == want
            assert list(page.seqs) == list(range(after + 1, after + 1 + len(want)))
            assert list(page.times) == [1.5 + i for i in range(after, after + len(want))]
            assert page.lines() == store.read_logs(*ref, after_seq=after, limit=limit)


def test_bad_log_level_names_the_field(store: Store, project, exp) -> None:
    bad = (LogLine(time.time(), "stdout", "LOUD", "x"),)
    with pytest.raises(ValidationError) as err:
        store.append_logs(project.id, exp.experiment_id, LogBatch("c", 1, bad))
    assert err.value.field == "level"
    assert store.read_logs(project.id, exp.experiment_id) == []
