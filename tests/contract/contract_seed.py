"""Seeding helpers for the contract tests: experiments with points, logs."""

from __future__ import annotations

import time

import numpy as np

from mltrail.core.types import LogBatch, LogLine, MetricBatch, SeriesChunk, Status
from mltrail.store.base import Store


def seed_experiment(
    store: Store, project_id: int, *, n: int = 10, hparams: dict | None = None, status: str = "done"
) -> int:
    """An experiment with a train loss and a validation accuracy series; returns its id."""
    exp = store.create_experiment(
        project_id, display_name=f"run-{time.time_ns()}", hyperparameters=hparams or {"lr": 0.1}
    )
    iterations = np.arange(n, dtype=np.int64)
    epochs = iterations // 5
    now = np.full(n, time.time())
    chunks = (
        SeriesChunk("loss", "train", iterations, epochs, 1.0 / (iterations + 1), now),
        SeriesChunk("accuracy", "validation", iterations, epochs, iterations / n, now),
    )
    store.append_points(project_id, exp.experiment_id, MetricBatch("seed", 1, chunks))
    store.update_experiment(project_id, exp.experiment_id, status=Status(status))
    return exp.experiment_id


def seed_logs(
    store: Store,
    project_id: int,
    experiment_id: int,
    messages: list[tuple[str, str, str]],
    seq: int = 1,
) -> None:
    lines = tuple(LogLine(time.time(), stream, level, msg) for stream, level, msg in messages)
    store.append_logs(project_id, experiment_id, LogBatch("seed-logs", seq, lines))
