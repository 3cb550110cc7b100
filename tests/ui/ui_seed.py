"""Filling a server for browser tests, and opening pages on it (used by conftest and tests)."""

from __future__ import annotations

import hashlib
import json
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


def open_page(browser: Any, token: str | None) -> Iterator[Any]:
    """A page in a fresh context (token preset when given); ``page.errors`` collects errors."""
    context = browser.new_context(viewport=VIEWPORT)
    if token:
        context.add_init_script(f"localStorage.setItem('mltrail.token', {token!r});")
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


def metric_batch(key: str, phase: str, iterations, values, epochs=None) -> MetricBatch:
    """One batch holding one series."""
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
        times=np.full(len(iterations), time.time()),
    )
    return MetricBatch(client_id=uuid.uuid4().hex, seq=1, chunks=(chunk,))


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


def bulk_experiments(db_url: str, project_id: int, count: int) -> None:
    """Insert ``count`` finished experiments in one transaction.

    Creating 10,000 experiments one store call at a time takes about a minute on SQLite; the
    table test needs the rows, not the per-call path (which the store suite covers), so this
    writes them straight into the store's own tables.
    """
    from sqlalchemy import create_engine, update

    from mltrail.store.sql.tables import experiments, projects

    now = time.time()
    rows = [
        {
            "project_id": project_id,
            "number": n,
            "display_name": f"sweep-{n:05d}",
            "description": "",
            "status": "done",
            "created_at": now + n,
            "started_at": now + n,
            "ended_at": now + n + (n % 97),
            "updated_at": now + n,
            "hyperparameters": json.dumps({"lr": ((n * 7919) % count) / count, "seed": n}),
            "environment": "{}",
            "source": "{}",
            "tags": "[]",
            "stop_requested": False,
            "log_count": 0,
        }
        for n in range(1, count + 1)
    ]
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(experiments.insert(), rows)
        conn.execute(
            update(projects).where(projects.c.id == project_id).values(next_experiment=count + 1)
        )
    engine.dispose()
