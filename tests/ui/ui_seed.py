"""Filling a server for browser tests, and opening pages on it (used by conftest and tests)."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mltrail.api import Api
from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk, Status
from mltrail.store.sql import SqlStore

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}


@dataclass
class UiServer:
    """A live server and the means to fill it."""

    url: str
    token: str
    store: SqlStore
    api: Api


def open_page(
    browser: Any,
    token: str | None,
    *,
    viewport: dict[str, int] | None = None,
    color_scheme: str | None = None,
    scripts: tuple[Path, ...] = (),
) -> Iterator[Any]:
    """A page in a fresh context (token preset when given); ``page.errors`` collects errors.

    ``scripts`` run in every page before the app (the accessibility checker); they are
    injected by the browser, so the UI's Content-Security-Policy stays as served.
    """
    context = browser.new_context(viewport=viewport or VIEWPORT, color_scheme=color_scheme)
    if token:
        context.add_init_script(f"localStorage.setItem('mltrail.token', {token!r});")
    for script in scripts:
        context.add_init_script(path=str(script))
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: page.errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )

    def on_dialog(dialog: Any) -> None:
        page.errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.set_default_timeout(15_000)
    yield page
    context.close()


# --- filling the store ------------------------------------------------------------------------


def metric_batch(key: str, phase: str, iterations, values, epochs=None, times=None) -> MetricBatch:
    """One batch holding one series (every point stamped now unless ``times`` are given)."""
    iterations = np.asarray(iterations, dtype=np.int64)
    epochs = (
        np.full(len(iterations), -1, np.int64) if epochs is None else np.asarray(epochs, np.int64)
    )
    chunk = SeriesChunk(
        key=key,
        phase=phase,
        iterations=iterations,
        epochs=epochs,
        values=np.asarray(values, dtype=np.float64),
        times=np.full(len(iterations), time.time()) if times is None else np.asarray(times, float),
    )
    return MetricBatch(client_id=uuid.uuid4().hex, seq=1, chunks=(chunk,))


def add_running_run(store: SqlStore, project_name: str, name: str) -> tuple[int, int]:
    """A project with one running experiment holding 10 points of train/loss."""
    project = store.create_project(project_name).id
    e = store.create_experiment(project, display_name=name, status=Status.RUNNING).experiment_id
    store.append_points(project, e, metric_batch("loss", "train", np.arange(10), np.ones(10)))
    return project, e


def append_logs(
    store: SqlStore, project: int, experiment: int, lines: list[tuple[str, str]]
) -> None:
    """Append (level, message) lines on stdout."""
    batch = LogBatch(
        client_id=uuid.uuid4().hex,
        seq=1,
        lines=tuple(
            LogLine(time=time.time(), stream="stdout", level=lvl, message=msg) for lvl, msg in lines
        ),
    )
    store.append_logs(project, experiment, batch)


def add_training_run(
    store: SqlStore,
    project: int,
    name: str,
    *,
    lr: float,
    epochs: int = 10,
    steps: int = 100,
    status: Status = Status.DONE,
) -> int:
    """An experiment with train/validation loss and accuracy, a weights hash per epoch."""
    exp = store.create_experiment(
        project,
        display_name=name,
        description=f"ResNet-18 on CIFAR-10, lr={lr}",
        hyperparameters={"lr": lr, "batch_size": 128, "optimizer": "sgd", "model": "resnet18"},
        environment={
            "framework": "pytorch",
            "torch": "2.13.0",
            "python": "3.11.9",
            "host": "gpu-01",
        },
        source={"git_commit": "3f2a9c1", "branch": "main", "dirty": False},
        tags=["cifar10", "baseline"],
        status=status,
    )
    e = exp.experiment_id
    it = np.arange(epochs * steps)
    epoch_of = it // steps
    loss = 2.3 * np.exp(-it / (epochs * steps / (3 + 30 * lr))) + 0.05 * np.sin(it / 7.0) + 0.1
    store.append_points(project, e, metric_batch("loss", "train", it, loss, epoch_of))
    ends = np.arange(1, epochs + 1) * steps - 1
    store.append_points(
        project, e, metric_batch("loss", "validation", ends, loss[ends] + 0.15, epoch_of[ends])
    )
    acc = 1 - loss[ends] / 2.6
    store.append_points(
        project, e, metric_batch("accuracy", "validation", ends, acc, epoch_of[ends])
    )
    for epoch, iteration in enumerate(ends.tolist()):
        store.link_weights_hash(
            project, e, demo_hash(project, name, epoch), iteration=iteration, epoch=epoch
        )
    return e


def demo_hash(project: int, name: str, epoch: int) -> str:
    """The weights hash the demo runs record at each epoch end (distinct per project)."""
    return hashlib.sha1(f"{project}/{name}/{epoch}".encode()).hexdigest()


def add_demo_project(server: UiServer) -> dict[str, int]:
    """A project with two finished runs, external metrics, custom charts and logs."""
    store, api = server.store, server.api
    project = store.create_project("cifar10-resnet", "Image classification baselines").id
    first = add_training_run(store, project, "resnet18-lr0.1", lr=0.1)
    second = add_training_run(store, project, "resnet18-lr0.01", lr=0.01)
    api.experiments.update_metrics(
        '{"ex_cost": 12.5, "ex_reviewed": true}', project=project, experiment=first
    )
    api.experiments.update_metrics('{"ex_cost": 9.75}', project=project, experiment=second)
    for epoch in range(0, 10, 3):
        api.experiments.update_metrics_per_iteration(
            demo_hash(project, "resnet18-lr0.1", epoch), {"ex_robust_acc": 0.5 + 0.04 * epoch}
        )
    api.experiments.update_chart(
        "Per-class accuracy",
        project=project,
        experiment=first,
        chart_x_name="class",
        chart_y_name='["baseline", "augmented"]',
        chart_scope="validation",
        chart_x='["cat", "dog", "ship", "truck"]',
        chart_y="[[0.81, 0.86], [0.77, 0.84], [0.92, 0.93], [0.9, 0.94]]",
    )
    fpr = [0.0, 0.1, 0.2, 0.4, 0.7, 1.0]
    api.experiments.update_chart(
        "ROC",
        project=project,
        experiment=first,
        chart_x_name="false positive rate",
        chart_y_name="true positive rate",
        chart_x=fpr,
        chart_y=[round(math.sqrt(x), 3) for x in fpr],
    )
    append_logs(
        store,
        project,
        first,
        [
            ("INFO", "epoch 1/10 loss=1.2034"),
            ("INFO", "\x1b[32mvalidation improved\x1b[0m: acc=0.612"),
            ("WARNING", "learning rate warm-up skipped"),
            ("ERROR", "\x1b[1;31mCUDA OOM\x1b[0m on batch 17, retrying"),
        ],
    )
    return {"project": project, "first": first, "second": second}


# --- a hyperparameter sweep (issue 16: the UI at sweep scale) --------------------------------

SWEEP_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
SWEEP_BATCHES = (32, 128, 512)
SWEEP_OPTIMIZERS = ("adam", "sgd")
SWEEP_CONSTANTS = {
    "augment": True,
    "dataset": "cifar10",
    "dropout": 0.1,
    "epochs": 10,
    "model": "resnet18",
}
SWEEP_ITERATIONS = 5_000
LONG_POINTS = 5_000_000
TRACEBACK = (
    "Traceback (most recent call last):",
    '  File "train.py", line 88, in <module>',
    "    loss = step(model, batch)",
    '  File "train.py", line 41, in step',
    "    out = model(x)",
    "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
)


@dataclass
class Sweep:
    """A 30-run sweep (lr x batch x optimizer): one running for 20 minutes, one failed with a
    traceback at the end of its log, one holding a 5,000,000-point series (``grad_norm``)."""

    project: int
    ids: list[int]
    running: int
    failed: int
    long: int
    hyperparameters: dict[int, dict[str, Any]]


def sweep_loss(it: np.ndarray, lr: float, batch: int, optimizer: str) -> np.ndarray:
    """A deterministic training curve that depends on every swept value."""
    speed = (0.6 if optimizer == "adam" else 0.25) * (lr / 1e-3) ** 0.5 * (128 / batch) ** 0.25
    floor = 0.05 + 0.02 * math.log10(batch) + (0.03 if optimizer == "sgd" else 0.0)
    return 2.3 * np.exp(-it * speed / 1200.0) + floor + 0.02 * np.sin(it / 37.0)


def set_run_times(
    db_url: str, project: int, number: int, started: float, ended: float | None
) -> None:
    """Backdate a run's start (and end): the store stamps them with the time of the call."""
    from sqlalchemy import create_engine, update

    from mltrail.store.sql.tables import experiments

    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            update(experiments)
            .where(experiments.c.project_id == project, experiments.c.number == number)
            .values(started_at=started, ended_at=ended)
        )
    engine.dispose()


def _sweep_run(
    store: SqlStore, project: int, index: int, lr: float, batch: int, opt: str, status: Status
) -> int:
    hp = {"lr": lr, "batch": batch, "optimizer": opt, **SWEEP_CONSTANTS}
    name = f"sweep-{opt}-lr{lr:g}-b{batch}"
    e = store.create_experiment(
        project, display_name=name, hyperparameters=hp, status=status
    ).experiment_id
    length = {Status.RUNNING: 2_500, Status.FAILED: 3_200}.get(status, SWEEP_ITERATIONS)
    it = np.arange(length)
    loss = sweep_loss(it, lr, batch, opt)
    store.append_points(project, e, metric_batch("loss", "train", it, loss, it // 500))
    ends = np.arange(499, length, 500)
    store.append_points(
        project, e, metric_batch("loss", "validation", ends, loss[ends] + 0.1, ends // 500)
    )
    accuracy = 1 - loss[ends] / 2.6
    store.append_points(
        project, e, metric_batch("accuracy", "validation", ends, accuracy, ends // 500)
    )
    if status == Status.DONE:  # one point: invisible without point markers
        store.append_points(
            project, e, metric_batch("accuracy", "test", [length - 1], [accuracy[-1] - 0.01])
        )
    return e


def add_sweep(server: UiServer, *, long_points: int = LONG_POINTS) -> Sweep:
    """The sweep, in a project of its own (about 8 s, most of it the long series)."""
    store = server.store
    project = store.create_project(f"sweep-{uuid.uuid4().hex[:6]}", "lr x batch x optimizer").id
    grid = [(lr, b, o) for o in SWEEP_OPTIMIZERS for b in SWEEP_BATCHES for lr in SWEEP_LRS]
    running, failed = 8, 17  # ids of the live and the failed run
    ids, hps = [], {}
    now = time.time()
    for index, (lr, batch, opt) in enumerate(grid, start=1):
        status = {running: Status.RUNNING, failed: Status.FAILED}.get(index, Status.DONE)
        e = _sweep_run(store, project, index, lr, batch, opt, status)
        ids.append(e)
        hps[e] = {"lr": lr, "batch": batch, "optimizer": opt, **SWEEP_CONSTANTS}
        started = now - 3_600 + 60 * index
        if e == running:
            set_run_times(store.url, project, e, now - 20 * 60, None)
        else:
            set_run_times(store.url, project, e, started, started + 600 + 7 * index)
    append_logs(
        store, project, failed, [("INFO", "epoch 1/10 loss=0.9"), ("INFO", "epoch 6/10 loss=0.4")]
    )
    batch = LogBatch(
        client_id=uuid.uuid4().hex,
        seq=1,
        lines=tuple(
            LogLine(time=time.time(), stream="stderr", level="ERROR", message=m) for m in TRACEBACK
        ),
    )
    store.append_logs(project, failed, batch)
    append_logs(store, project, running, [("INFO", "epoch 5/10 loss=0.31")])
    long = ids[-1]
    it = np.arange(long_points)
    signal = np.sin(it / 1000.0) + 0.25 * np.sin(it / 7.0) + 2.0  # structure at every scale
    for start in range(0, long_points, 50_000):  # the SDK's batch size
        part = slice(start, start + 50_000)
        store.append_points(
            project, long, metric_batch("grad_norm", "train", it[part], signal[part])
        )
    return Sweep(project, ids, running, failed, long, hps)


def add_many_runs(server: UiServer, count: int, *, points: int = 200) -> tuple[int, list[int]]:
    """``count`` short runs with two metrics each (the compare view at 100 runs)."""
    store = server.store
    project = store.create_project(f"many-{uuid.uuid4().hex[:6]}").id
    ids = []
    it = np.arange(points)
    for n in range(count):
        hp = {
            "lr": 10 ** (-4 + (n % 10) / 3),
            "seed": n // 10,
            "optimizer": "adam" if n % 2 else "sgd",
        }
        e = store.create_experiment(
            project, display_name=f"run-{n:03d}", hyperparameters=hp
        ).experiment_id
        loss = 1.0 / (1 + it * (0.01 + n / 2000)) + n / 1000
        store.append_points(project, e, metric_batch("loss", "train", it, loss))
        store.append_points(
            project, e, metric_batch("accuracy", "validation", it[::20], 1 - loss[::20])
        )
        store.update_experiment(project, e, status=Status.DONE)
        ids.append(e)
    return project, ids
